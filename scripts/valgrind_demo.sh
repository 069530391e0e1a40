#!/usr/bin/env bash
# The README demo under valgrind memcheck, on a smaller log (valgrind runs code ~50x slower):
# kseg generate, kseg run with examples/demo.yaml's pipeline (RFM, k sweep, naming, schemes, the
# report with its HTML), then kseg report and kseg predict on the result. Fails on any memcheck
# error or any definite or indirect leak. Uses the release build (scripts/test.sh builds it).
#   bash scripts/valgrind_demo.sh [--transactions N] [--customers N]   (defaults 200000, 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
transactions=200000
customers=20000
while [ $# -gt 0 ]; do
    case "$1" in
        --transactions) transactions="$2"; shift 2 ;;
        --customers) customers="$2"; shift 2 ;;
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "valgrind_demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
kseg="$PWD/build/release/kseg"
[ -x "$kseg" ] || { echo "valgrind_demo.sh: build the release preset first" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind_demo.sh: valgrind is not installed" >&2; exit 1; }
if [ -z "${KSEG_PYTHON:-}" ] && [ -x .venv/bin/python ]; then
    export KSEG_PYTHON="$PWD/.venv/bin/python"
fi
# With OPENBLAS_NUM_THREADS unset, kseg re-executes itself to set it (see cli/main.c), and the
# re-executed process would run outside valgrind.
export OPENBLAS_NUM_THREADS=1
# valgrind runs one thread at a time: OpenMP threads that spin while waiting would only burn
# its time (the OpenMP regions still run on 2 threads, so their code paths are all checked).
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
out=build/valgrind-demo
rm -rf "$out"
mkdir -p "$out"
# The demo's configuration with the smaller log in place of build/demo's.
sed "s|transactions: ../build/demo/transactions.h5|transactions: $PWD/$out/transactions.h5|" \
    examples/demo.yaml > "$out/demo.yaml"
grep -q "$PWD/$out/transactions.h5" "$out/demo.yaml" ||
    { echo "valgrind_demo.sh: examples/demo.yaml no longer names its input as expected" >&2; exit 1; }

status=0
memcheck() {
    local name="$1"
    shift
    echo "valgrind: kseg $*"
    # Definite and indirect leaks fail; 'still reachable' (HDF5's and OpenMP's process-lifetime
    # state, released by the OS at exit) and 'possibly lost' (OpenMP thread stacks) do not.
    if ! valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
            --log-file="$out/$name.valgrind.log" "$kseg" "$@" >"$out/$name.out" 2>&1; then
        echo "valgrind: kseg $1 FAILED; see $out/$name.valgrind.log and $out/$name.out" >&2
        tail -n 30 "$out/$name.valgrind.log" >&2
        status=1
    else
        grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$out/$name.valgrind.log" |
            sed 's/^==[0-9]*== /    /'
    fi
}
memcheck generate generate transactions --transactions "$transactions" --customers "$customers" \
    --seed 7 -o "$out/transactions.h5"
memcheck run run "$out/demo.yaml" -o "$out/run"
memcheck report report "$out/run/result.h5" --json "$out/report.json"
memcheck predict predict --model "$out/run/result.h5" "$out/run/rfm.h5:/rfm" -o "$out/predicted.h5"
exit $status
