#!/usr/bin/env bash
# Installs the real clients the tests drive: curl, openssl, strongSwan's
# `pki` with its curl plugin (Debian: strongswan-pki + libstrongswan-extra-plugins),
# and Bouncy Castle's EST client (libbcpkix-java, libbcprov-java, libbcutil-java)
# with a JDK to compile test/java/BcEstClient.java (openjdk-17-jdk-headless).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq curl openssl strongswan-pki libstrongswan-extra-plugins >/dev/null
# Bouncy Castle: its EST client (test/java/BcEstClient.java) and the DER differential test's oracle
# (test/oracle/DerOracle.java), both compiled at test time with the JDK.
$SUDO apt-get install -y -qq libbcpkix-java libbcprov-java libbcutil-java openjdk-17-jdk-headless >/dev/null
# The package test (test/install/package.spec.ts): npm run package compiles better-sqlite3 (g++, make,
# python3); the .deb is installed with dpkg and its postinst uses adduser; systemd-analyze checks the unit;
# strace and util-linux's unshare/runuser reproduce the unit's sandbox; sqlite3 for the backup in docs/install.md.
$SUDO apt-get install -y -qq g++ make python3 adduser systemd strace util-linux sqlite3 >/dev/null
# PostgreSQL for the store contract on PostgreSQL and the two-node specs (test/helpers/postgres.ts starts its own
# server with initdb/pg_ctl on a temporary directory and a free port; a service the package may start is not used).
$SUDO apt-get install -y -qq postgresql >/dev/null
# HAProxy in front of two nodes: test/helpers/haproxy.ts and the bench's cluster section run their own
# `haproxy -f cfg -db`; a service the package may start is not used.
$SUDO apt-get install -y -qq haproxy >/dev/null
command -v haproxy >/dev/null || { echo "haproxy did not install" >&2; exit 1; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "PostgreSQL's initdb did not install" >&2; exit 1; }
command -v haproxy >/dev/null || { echo "haproxy did not install" >&2; exit 1; }
pki --help >/dev/null 2>&1 || { echo "strongSwan pki did not install" >&2; exit 1; }
for jar in bcprov bcpkix bcutil; do
  [ -f "/usr/share/java/$jar.jar" ] || { echo "/usr/share/java/$jar.jar is missing" >&2; exit 1; }
done
javac -version >/dev/null 2>&1 || { echo "javac did not install" >&2; exit 1; }
for tool in strace systemd-analyze unshare runuser; do
  command -v "$tool" >/dev/null || { echo "$tool did not install" >&2; exit 1; }
done
echo "curl, openssl, strongSwan pki, Bouncy Castle, javac, strace, systemd-analyze, PostgreSQL and HAProxy are installed"
