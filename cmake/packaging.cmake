# Install layout of the service parts, the Debian package (CPack DEB), and
# the ctest checks of both. Included once from the top-level CMakeLists.txt,
# after every target exists.
#
# Layout (relative to CMAKE_INSTALL_PREFIX, /usr for the .deb):
#   bin/toriid, bin/torii                   (daemon/ and tools/ install them)
#   lib/systemd/system/toriid.service       (TORII_SYSTEMD_UNITDIR)
#   lib/sysusers.d/toriid.conf              (the torii account)
#   share/toriid/schema/NNNN_name.sql
#   share/doc/toriid/*.md
#   /etc/torii/toriid.toml                  (example config; /etc when the
#                                            prefix is /usr, else PREFIX/etc)

set(TORII_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "systemd system unit directory, relative to the install prefix")
set(TORII_SYSUSERSDIR "lib/sysusers.d" CACHE STRING
    "sysusers.d directory, relative to the install prefix")

install(FILES ${PROJECT_SOURCE_DIR}/systemd/toriid.service DESTINATION ${TORII_SYSTEMD_UNITDIR})
install(FILES ${PROJECT_SOURCE_DIR}/systemd/toriid.sysusers DESTINATION ${TORII_SYSUSERSDIR} RENAME toriid.conf)

# The example config. The GNU rule for sysconfdir (/etc when the prefix is
# /usr, else PREFIX/etc) has to be applied when installing, not when
# configuring: `cmake --install --prefix /usr` and CPack both choose the
# prefix late. file(INSTALL) prepends DESTDIR itself.
install(CODE "
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(_torii_etc \"/etc/torii\")
  else()
    set(_torii_etc \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SYSCONFDIR}/torii\")
  endif()
  file(INSTALL DESTINATION \"\${_torii_etc}\" TYPE FILE
       FILES \"${PROJECT_SOURCE_DIR}/conf/toriid.toml\")
")

# --- Debian package ---------------------------------------------------------
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "toriid")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "Torii maintainers <torii@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Torii storage daemon: users and sessions in PostgreSQL, served over ZeroMQ")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
# Install with DESTDIR=<staging> and the real prefix, so that the config
# rule above lands in /etc rather than beside the staging prefix.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
# Named explicitly rather than through dpkg-shlibdeps, so that the package
# states what the daemon needs at run time on Debian 12 even when built in
# a tree without a debian/ folder.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libpq5, libuv1, libzmq5, libsodium23, libsystemd0, libsqlite3-0, libtomlplusplus3, libc6, libstdc++6")
# The embedded-PostgreSQL default (development) needs the server binaries.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "postgresql")
# /etc/torii/toriid.toml is a conffile: upgrades keep the admin's edits.
# postinst creates the torii account; the unit is not enabled until the
# admin has pointed the config at a database (docs/operations.md).
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/systemd/debian/conffiles;${PROJECT_SOURCE_DIR}/systemd/debian/postinst")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)

# --- ctest checks -------------------------------------------------------------
if(BUILD_TESTING)
  # The unit's hardening, scored by systemd itself: fail above 2.0.
  find_program(TORII_SYSTEMD_ANALYZE systemd-analyze)
  if(TORII_SYSTEMD_ANALYZE)
    add_test(NAME service.unit_security_score
             COMMAND ${PROJECT_SOURCE_DIR}/systemd/ci/security-score.sh ${TORII_SYSTEMD_ANALYZE}
                     ${PROJECT_SOURCE_DIR}/systemd/toriid.service 2.0)
    set_tests_properties(service.unit_security_score PROPERTIES LABELS service)
  endif()

  # bin/torii is expected once tools/ defines the CLI (an executable whose
  # output name is torii; the library target already has that name).
  set(TORII_EXPECT_CLI 0)
  get_property(_torii_tools DIRECTORY ${PROJECT_SOURCE_DIR}/tools PROPERTY BUILDSYSTEM_TARGETS)
  foreach(_t IN LISTS _torii_tools)
    get_target_property(_type ${_t} TYPE)
    get_target_property(_out ${_t} OUTPUT_NAME)
    if(_type STREQUAL "EXECUTABLE" AND (_out STREQUAL "torii" OR (NOT _out AND _t STREQUAL "torii")))
      set(TORII_EXPECT_CLI 1)
    endif()
  endforeach()

  # `cmake --install` into a scratch DESTDIR (prefix /usr), checked file by
  # file; then the .deb, checked with dpkg-deb when it is on the machine.
  add_test(NAME service.install_tree
           COMMAND ${PROJECT_SOURCE_DIR}/systemd/ci/install-tree.sh ${CMAKE_COMMAND} ${PROJECT_BINARY_DIR}
                   ${PROJECT_SOURCE_DIR} ${TORII_EXPECT_CLI})
  set_tests_properties(service.install_tree PROPERTIES LABELS service TIMEOUT 600
                       RESOURCE_LOCK torii_install_tree)
endif()
