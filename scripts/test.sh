#!/usr/bin/env bash
# Builds kseg and runs the whole test suite: the release build; AddressSanitizer (leaks fail the
# run) and UndefinedBehaviorSanitizer builds; ThreadSanitizer drivers (clang, libomp); each
# libFuzzer target for a bounded time; the MPI build's distributed tests (mpirun, compared with
# the release build), also under ASan + UBSan; and the demo under valgrind memcheck. Expects
# scripts/setup.sh to have run. KSEG_FUZZ_SECONDS (default 30) bounds each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$PWD/.venv/bin/python"
jobs=$(nproc)
status=0
for preset in release asan ubsan tsan; do
    echo "=== $preset: configure and build"
    # The tsan build has no Python tests, so it takes no interpreter.
    if [ "$preset" = tsan ]; then
        cmake --preset "$preset" >/dev/null
    else
        cmake --preset "$preset" -DKSEG_PYTHON="$python" >/dev/null
    fi
    cmake --build --preset "$preset" -j "$jobs" >/dev/null
    echo "=== $preset: tests"
    if [ "$preset" = release ]; then
        ctest --preset "$preset" -j 1 || status=1
    else
        # Sanitizer builds run the unit and CLI tests; the scikit-learn oracle runs in release.
        ctest --preset "$preset" -j 1 -E '^oracle_' || status=1
    fi
done
echo "=== mpi: configure, build and the distributed tests (tests/mpi, against the release build)"
cmake --preset mpi -DKSEG_PYTHON="$python" >/dev/null
cmake --build --preset mpi -j "$jobs" >/dev/null
ctest --preset mpi -j 1 -L mpi || status=1
echo "=== mpi-asan: the distributed tests again, under AddressSanitizer + UndefinedBehaviorSanitizer"
# Leak checking is off there: OpenMPI keeps allocations until exit by design.
cmake --preset mpi-asan -DKSEG_PYTHON="$python" >/dev/null
cmake --build --preset mpi-asan -j "$jobs" >/dev/null
ctest --preset mpi-asan -j 1 -L mpi || status=1
echo "=== fuzz: every target for ${KSEG_FUZZ_SECONDS:-30} s"
bash scripts/fuzz.sh --seconds "${KSEG_FUZZ_SECONDS:-30}" || status=1
echo "=== valgrind: the demo under memcheck"
bash scripts/valgrind_demo.sh || status=1
exit $status
