#!/bin/sh
# /usr/bin/est-ra: runs the installed est-ra with the node found on PATH
# (systemd's default PATH has /usr/local/bin, where Node's official tarball goes).
# main.js's shebang carries the V8 memory settings est-ra is measured with.
if ! command -v node >/dev/null 2>&1; then
  echo "est-ra: node not found on PATH ($PATH); est-ra needs Node.js >= 20.19, see /usr/share/doc/est-ra/install.md" >&2
  exit 127
fi
exec /usr/lib/est-ra/dist/src/cli/main.js "$@"
