# Install layout of the service parts, the Debian package (CPack DEB), and
# the ctest checks of both. Included once from the top-level CMakeLists.txt,
# after every target exists.
#
# Layout (relative to CMAKE_INSTALL_PREFIX, /usr for the .deb):
#   bin/toriid, bin/torii                   (daemon/ and tools/ install them)
#   lib/systemd/system/toriid.service       (TORII_SYSTEMD_UNITDIR)
#   lib/sysusers.d/toriid.conf              (the torii account)
#   share/toriid/schema/NNNN_name.sql
#   share/doc/toriid/*.md, copyright, changelog.gz (Debian wants both)
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

# Whoever publishes the package sets their own address (-DTORII_PACKAGE_MAINTAINER=...);
# the default only has to be well-formed (lintian rejects @localhost).
set(TORII_PACKAGE_MAINTAINER "Torii maintainers <torii-maintainers@example.org>" CACHE STRING
    "Maintainer field of the .deb and its changelog")

# The Debian copyright file and a native-package changelog (gzip -n: the
# same bytes on every build).
configure_file(${PROJECT_SOURCE_DIR}/systemd/debian/changelog.in ${PROJECT_BINARY_DIR}/debian/changelog @ONLY)
execute_process(COMMAND gzip -9 -n -f -k ${PROJECT_BINARY_DIR}/debian/changelog RESULT_VARIABLE _torii_gzip)
if(NOT _torii_gzip EQUAL 0)
  message(FATAL_ERROR "gzip of debian/changelog failed")
endif()
install(FILES ${PROJECT_SOURCE_DIR}/systemd/debian/copyright ${PROJECT_BINARY_DIR}/debian/changelog.gz
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# --- Debian package ---------------------------------------------------------
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "toriid")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "${TORII_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Torii storage daemon: users and sessions in PostgreSQL, served over ZeroMQ")
set(CPACK_PACKAGE_DESCRIPTION
    "toriid keeps the users and sessions of the Torii authentication system in
PostgreSQL and serves them to applications over ZeroMQ (msgpack requests on a
ROUTER socket, change events on a PUB socket fed by LISTEN/NOTIFY). It applies
its own schema migrations, cleans up expired sessions, keeps an audit trail,
and can serve Prometheus metrics. The package installs the daemon, the torii
command-line client, a hardened systemd unit (not enabled) and an example
configuration in /etc/torii.")
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
    "libpq5, libuv1, libzmq5, libsodium23, libsystemd0, libsqlite3-0, libtomlplusplus3, libprometheus-cpp-core1.0, libprometheus-cpp-pull1.0, libc6, libstdc++6, adduser")
# The embedded-PostgreSQL default (development) needs the server binaries.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "postgresql")
# /etc/torii/toriid.toml is a conffile: upgrades keep the admin's edits.
# postinst creates the torii account; the unit is not enabled until the
# admin has pointed the config at a database (docs/operations.md). prerm
# stops the service on removal; postrm's purge removes /etc/torii and
# /var/lib/toriid. tools/package-check installs, removes and purges it.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/systemd/debian/conffiles;${PROJECT_SOURCE_DIR}/systemd/debian/postinst;${PROJECT_SOURCE_DIR}/systemd/debian/prerm;${PROJECT_SOURCE_DIR}/systemd/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
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
