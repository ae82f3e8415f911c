#!/usr/bin/env bash
# README command two: installs what is missing, builds with -Werror, runs the whole test
# suite, then runs the unit and CLI tests again under AddressSanitizer + UndefinedBehaviorSanitizer,
# and builds octet once more without the AVX2/AVX-512 clones of the C loops (-Dclones=false) to
# check that it trains, exports and infers the same bits as the release build (same_bits.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source trainers/deps.sh
octet_install_deps

jobs=$(nproc)
meson setup build-test --buildtype=release -Dwerror=true -Dtests=enabled --reconfigure >/dev/null 2>&1 ||
    meson setup build-test --buildtype=release -Dwerror=true -Dtests=enabled >/dev/null
ninja -C build-test -j "$jobs"
# count_results LOG: adds the Ok/Fail/Skipped counts of a meson test summary to the totals.
passed=0 failed=0 skipped=0
count_results() {
    passed=$((passed + $(awk '/^Ok:/ {print $2}' "$1")))
    failed=$((failed + $(awk '/^Fail:/ {print $2}' "$1") + $(awk '/^Timeout:/ {print $2}' "$1")))
    skipped=$((skipped + $(awk '/^Skipped:/ {print $2}' "$1")))
}
meson test -C build-test --print-errorlogs --num-processes "$jobs" | tee build-test/summary.txt
count_results build-test/summary.txt

meson setup build-asan --buildtype=debugoptimized -Dwerror=true -Dtests=enabled \
    -Db_sanitize=address,undefined -Db_lundef=false -Dclones=true --reconfigure >/dev/null 2>&1 ||
    meson setup build-asan --buildtype=debugoptimized -Dwerror=true -Dtests=enabled \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --suite unit --suite cli --print-errorlogs --num-processes "$jobs" |
    tee build-asan/summary.txt
count_results build-asan/summary.txt
meson setup build-portable --buildtype=release -Dwerror=true -Dtests=disabled -Dclones=false \
    --reconfigure >/dev/null 2>&1 ||
    meson setup build-portable --buildtype=release -Dwerror=true -Dtests=disabled -Dclones=false >/dev/null
ninja -C build-portable -j "$jobs" octet
if bash tests/same_bits.sh build-test/octet build-portable/octet; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi
echo "octet: release -Werror build, ASan+UBSan build, and a portable build with the same bits"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
