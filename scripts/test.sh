#!/usr/bin/env bash
# Builds kseg and runs the whole test suite: the release build, then AddressSanitizer (with leak
# checking) and UndefinedBehaviorSanitizer builds. Expects scripts/setup.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$PWD/.venv/bin/python"
jobs=$(nproc)
status=0
for preset in release asan ubsan; do
    echo "=== $preset: configure and build"
    cmake --preset "$preset" -DKSEG_PYTHON="$python" >/dev/null
    cmake --build --preset "$preset" -j "$jobs" >/dev/null
    echo "=== $preset: tests"
    if [ "$preset" = release ]; then
        ctest --preset "$preset" -j 1 || status=1
    else
        # Sanitizer builds run the unit and CLI tests; the scikit-learn oracle runs in release.
        ctest --preset "$preset" -j 1 -E '^oracle_' || status=1
    fi
done
exit $status
