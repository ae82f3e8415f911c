#!/usr/bin/env bash
# README command two: installs what is missing, builds with -Werror, runs the whole test
# suite, then runs the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
source trainers/deps.sh
octet_install_deps

jobs=$(nproc)
meson setup build-test --buildtype=release -Dwerror=true -Dtests=enabled --reconfigure >/dev/null 2>&1 ||
    meson setup build-test --buildtype=release -Dwerror=true -Dtests=enabled >/dev/null
ninja -C build-test -j "$jobs"
meson test -C build-test --print-errorlogs --num-processes "$jobs"

meson setup build-asan --buildtype=debugoptimized -Dwerror=true -Dtests=enabled \
    -Db_sanitize=address,undefined -Db_lundef=false --reconfigure >/dev/null 2>&1 ||
    meson setup build-asan --buildtype=debugoptimized -Dwerror=true -Dtests=enabled \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --suite unit --print-errorlogs --num-processes "$jobs"
echo "octet: all tests passed (release -Werror and ASan+UBSan)"
