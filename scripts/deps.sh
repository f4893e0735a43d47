#!/usr/bin/env bash
# Installs the Debian 12 packages distill's build, tests and demo need (as root, or through sudo).
# Usage: scripts/deps.sh [extra packages...]
set -euo pipefail
pkgs=(build-essential cmake ninja-build libeigen3-dev catch2 libfmt-dev libcli11-dev libopenmpi-dev openmpi-bin python3 "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ "${DISTILL_APT_UPDATE:-0}" = 1 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "deps: apt-get update; installing: ${missing[*]:-(nothing missing)}"
  $SUDO apt-get update -qq
  [ ${#missing[@]} -gt 0 ] && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
exit 0
