#!/usr/bin/env bash
# Installs octet's build and run dependencies from Debian when they are missing.
# Sourced by the two README commands (trainers/quickstart.sh and tests/run.sh).
set -euo pipefail

OCTET_PACKAGES=(gcc libc6-dev pkg-config meson ninja-build libopenblas-dev zlib1g-dev
                libjansson-dev libcmocka-dev dataset-fashion-mnist)

octet_install_deps() {
    local missing=()
    for p in "${OCTET_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    if ((${#missing[@]})); then
        if [ "$(id -u)" -ne 0 ]; then
            echo "octet: missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
            exit 1
        fi
        echo "octet: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}
