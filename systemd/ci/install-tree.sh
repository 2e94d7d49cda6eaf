#!/bin/sh
# Installs the build into a scratch DESTDIR with prefix /usr (the Debian
# layout) and checks the tree file by file; then builds the .deb with CPack
# and checks its contents, control fields and conffiles with dpkg-deb.
# Usage: install-tree.sh CMAKE BUILD_DIR SOURCE_DIR [EXPECT_TORII_CLI=1|0]
set -eu
cmake=$1
build=$2
src=$3
expect_cli=${4:-1}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/toriid-install.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

root=$scratch/root
DESTDIR=$root "$cmake" --install "$build" --prefix /usr >"$scratch/install.log" 2>&1 || {
  cat "$scratch/install.log"; echo "cmake --install failed" >&2; exit 1; }

want_file() { [ -f "$root/$1" ] || bad "missing $1"; }
want_exec() { [ -x "$root/$1" ] && [ -f "$root/$1" ] || bad "missing or not executable: $1"; }

want_exec usr/bin/toriid
[ "$expect_cli" = 1 ] && want_exec usr/bin/torii
want_file usr/lib/systemd/system/toriid.service
want_file usr/lib/sysusers.d/toriid.conf
want_file etc/torii/toriid.toml
want_file usr/share/doc/toriid/README.md
want_file usr/share/doc/toriid/operations.md
for f in "$src"/schema/*.sql; do want_file "usr/share/toriid/schema/$(basename "$f")"; done
# Nothing may land beside the layout (e.g. usr/etc from a relative sysconfdir).
[ -e "$root/usr/etc" ] && bad "usr/etc exists: the config must go to /etc when the prefix is /usr"
cmp -s "$src/systemd/toriid.service" "$root/usr/lib/systemd/system/toriid.service" || bad "installed unit differs"
cmp -s "$src/conf/toriid.toml" "$root/etc/torii/toriid.toml" || bad "installed config differs"

# The unit runs what the package installs, with the config it installs.
grep -q '^ExecStart=/usr/bin/toriid --config /etc/torii/toriid.toml$' "$root/usr/lib/systemd/system/toriid.service" ||
  bad "ExecStart does not run /usr/bin/toriid --config /etc/torii/toriid.toml"
# The installed example config is valid as shipped.
env -u TORII_DATABASE_URL "$root/usr/bin/toriid" --check-config --config "$root/etc/torii/toriid.toml" >"$scratch/check.log" 2>&1 ||
  { cat "$scratch/check.log"; bad "the installed example config does not pass --check-config"; }
"$root/usr/bin/toriid" --version | grep -q '^toriid ' || bad "toriid --version"
echo "install tree: $(cd "$root" && find . -type f | wc -l) files checked under DESTDIR"

# The Debian package.
if command -v dpkg-deb >/dev/null 2>&1; then
  cpack=$(dirname "$cmake")/cpack
  [ -x "$cpack" ] || cpack=cpack
  (cd "$build" && "$cpack" -G DEB -B "$scratch/pkg" >"$scratch/cpack.log" 2>&1) || {
    cat "$scratch/cpack.log"; echo "cpack -G DEB failed" >&2; exit 1; }
  deb=$(ls "$scratch"/pkg/*.deb | head -n 1)
  [ -f "$deb" ] || { echo "no .deb produced" >&2; exit 1; }
  dpkg-deb -c "$deb" | awk '{ print $6 }' >"$scratch/contents"
  for p in ./usr/bin/toriid ./usr/lib/systemd/system/toriid.service ./usr/lib/sysusers.d/toriid.conf \
           ./etc/torii/toriid.toml ./usr/share/toriid/schema/0001_initial.sql ./usr/share/doc/toriid/operations.md; do
    grep -qx "$p" "$scratch/contents" || bad "$(basename "$deb") lacks $p"
  done
  [ "$expect_cli" = 1 ] && { grep -qx ./usr/bin/torii "$scratch/contents" || bad "$(basename "$deb") lacks ./usr/bin/torii"; }
  grep -q '^\./usr/etc' "$scratch/contents" && bad "$(basename "$deb") has usr/etc"
  depends=$(dpkg-deb -f "$deb" Depends)
  for d in libpq5 libuv1 libzmq5 libsodium23 libsystemd0 libsqlite3-0; do
    echo "$depends" | grep -qw "$d" || bad "Depends lacks $d: $depends"
  done
  dpkg-deb -f "$deb" Recommends | grep -qw postgresql || bad "Recommends lacks postgresql"
  mkdir -p "$scratch/control"
  dpkg-deb -e "$deb" "$scratch/control"
  grep -qx /etc/torii/toriid.toml "$scratch/control/conffiles" || bad "/etc/torii/toriid.toml is not a conffile"
  for script in postinst prerm postrm; do
    [ -x "$scratch/control/$script" ] || bad "no executable $script"
  done
  for p in ./usr/share/doc/toriid/copyright ./usr/share/doc/toriid/changelog.gz; do
    grep -qx "$p" "$scratch/contents" || bad "$(basename "$deb") lacks $p"
  done
  echo "package: $(basename "$deb"), $(wc -l <"$scratch/contents") entries; Depends: $depends"
fi
exit $fail
