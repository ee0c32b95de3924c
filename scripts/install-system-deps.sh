#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (the real PC/SC reader stack, a
# compiler for pyscard, and systemd for `systemd-analyze verify` of deploy/systemd/).
# Idempotent: does nothing when they are already there.
set -euo pipefail
pkgs=(pcscd libpcsclite-dev vsmartcard-vpcd gcc python3-dev systemd)
pkgs+=(openssl)  # onecard-central init --tls-self-signed, and tests/test_tls.py
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# pcscd is started by the tests themselves (127.0.0.1-only vpcd); never by the package.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now pcscd.socket pcscd.service >/dev/null 2>&1 || true
fi
