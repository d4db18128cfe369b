#!/usr/bin/env bash
# Installs the real clients the tests drive: curl, openssl, and strongSwan's
# `pki` with its curl plugin (Debian: strongswan-pki + libstrongswan-extra-plugins).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq curl openssl strongswan-pki libstrongswan-extra-plugins >/dev/null
# The DER differential test's Bouncy Castle oracle (test/oracle/DerOracle.java), compiled at test time.
$SUDO apt-get install -y -qq default-jdk-headless libbcprov-java libbcutil-java libbcpkix-java >/dev/null
pki --help >/dev/null 2>&1 || { echo "strongSwan pki did not install" >&2; exit 1; }
echo "curl, openssl and strongSwan pki are installed"
