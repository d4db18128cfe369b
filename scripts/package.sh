#!/usr/bin/env bash
# npm run package: builds the release artifacts into release/ (gitignored)
#   est-ra_<version>_<arch>.deb        for Debian 12 / Ubuntu 24.04 (dpkg -i, no compiler, no registry)
#   est-ra-<version>-linux-x64.tar.gz  the same tree, with an INSTALL note, for other distributions
# The program is dist/src (no tests) with production dependencies only,
# installed by `npm ci --omit=dev` in a staging copy: better-sqlite3's native
# module is compiled here, at package time, against this machine's Node.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(node -p "require('./package.json').version")
arch=$(dpkg --print-architecture)
release=release
stage=$release/stage
root=$stage/root
app=$root/usr/lib/est-ra
doc=$root/usr/share/doc/est-ra

rm -rf "$stage" "$release/est-ra_${version}_${arch}.deb" "$release/est-ra-${version}-linux-x64.tar.gz"
mkdir -p "$app/dist" "$root/usr/bin" "$root/lib/systemd/system" "$doc" "$root/DEBIAN"

# Compiled straight into the staging tree: the clone's dist/ (tests, a running demo) is left alone.
npx tsc -p tsconfig.package.json --outDir "$app/dist"
chmod +x "$app/dist/src/cli/main.js"
cp package.json package-lock.json "$app/"
(cd "$app" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
# At run time better-sqlite3 needs its compiled module only, not the SQLite
# sources, objects and test extension it was built from (26 of its 28 MB).
sqlite=$app/node_modules/better-sqlite3
[ -f "$sqlite/build/Release/better_sqlite3.node" ] || { echo "better-sqlite3's native module was not built" >&2; exit 1; }
mv "$sqlite/build/Release/better_sqlite3.node" "$stage/"
rm -rf "$sqlite/build" "$sqlite/deps" "$sqlite/src"
mkdir -p "$sqlite/build/Release"
strip --strip-unneeded -o "$sqlite/build/Release/better_sqlite3.node" "$stage/better_sqlite3.node"

install -m 0755 packaging/est-ra.sh "$root/usr/bin/est-ra"
install -m 0644 systemd/est-ra.service "$root/lib/systemd/system/est-ra.service"
install -m 0644 README.md docs/*.md packaging/copyright "$doc/"

# Every file root:root (dpkg-deb --root-owner-group), readable by all, writable by root only.
chmod -R u+rwX,go+rX,go-w "$root"
installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: est-ra
Version: $version
Architecture: $arch
Maintainer: est-ra maintainers <est-ra@localhost>
Depends: nodejs (>= 20.19), adduser
Section: net
Priority: optional
Installed-Size: $installed_kb
Description: on-premises EST (RFC 7030) registration authority
 Devices enroll over EST; est-ra authenticates them, enforces a profile,
 records each request in SQLite and gets certificates from an embedded local
 CA or an upstream RFC 7030 server. Runs as the est-ra system user under a
 hardened systemd unit. Production dependencies are included, native modules
 compiled: installing needs no compiler and no registry.
CONTROL
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
dpkg-deb --root-owner-group -Zxz --build "$root" "$release/est-ra_${version}_${arch}.deb" >/dev/null

tree=est-ra-${version}-linux-x64
mkdir -p "$stage/$tree"
cp -a "$root/usr" "$root/lib" "$stage/$tree/"
sed "s/VERSION/$version/" packaging/INSTALL >"$stage/$tree/INSTALL"
tar --owner=0 --group=0 --numeric-owner -C "$stage" -czf "$release/$tree.tar.gz" "$tree"

rm -rf "$stage"
ls -l "$release"
