#!/usr/bin/env bash
# Install the Debian packages in scripts/packages.txt (as root). Idempotent:
# apt runs only when something is missing. A package counts as present when it is
# installed or an installed package provides it (as apt itself counts it): a nodejs
# package that bundles npm provides npm and conflicts with Debian's own.
set -euo pipefail
cd "$(dirname "$0")"
mapfile -t pkgs < <(grep -v '^\s*#' packages.txt | grep -v '^\s*$')
provided=$(dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null |
    awk -F'|' '$1 ~ /^ii/ { print $2 }' | tr ',' '\n' | sed 's/(.*)//; s/[[:space:]]//g')
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        grep -qx -- "$p" <<<"$provided" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#pkgs[@]} packages present"
    exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
