#!/usr/bin/env bash
# Builds kseg's libFuzzer targets (preset fuzz: clang, AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs each for a bounded time on a copy of its corpus in build/fuzz/work, so that new inputs
# never land in the source tree. Exits non-zero when a target finds a crash, a leak, a timeout or
# runs out of memory, and prints the reproducer's path. scripts/test.sh runs it for CI.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(fuzz_csv_import fuzz_h5_input fuzz_yaml fuzz_rfm_map)

usage() {
    cat <<EOF
Usage: bash scripts/fuzz.sh [--seconds N] [TARGET...]

Builds the libFuzzer targets (cmake --preset fuzz: clang, ASan + UBSan) and runs each TARGET
(default: all of ${all_targets[*]}) for N seconds (default 30), one after the other, on a copy of
tests/fuzz/corpus/TARGET in build/fuzz/work/TARGET/corpus. Exits 1 if any target finds a crash,
a leak, a timeout (an input slower than 10 s) or an out-of-memory, printing the reproducer's
path (build/fuzz/work/TARGET/artifacts/...); rerun it with build/fuzz/tests/fuzz/TARGET FILE.

Options:
  --seconds N   fuzzing time per target (default 30)
  -h, --help    this help
EOF
}

seconds=30
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds)
        [ $# -ge 2 ] || { echo "fuzz.sh: --seconds needs a value" >&2; exit 2; }
        seconds=$2
        shift 2
        ;;
    --seconds=*)
        seconds=${1#--seconds=}
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*)
        echo "fuzz.sh: unknown option $1 (see --help)" >&2
        exit 2
        ;;
    *)
        targets+=("$1")
        shift
        ;;
    esac
done
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "fuzz.sh: --seconds must be a positive whole number, not '$seconds'" >&2
    exit 2
fi
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    case " ${all_targets[*]} " in
    *" $target "*) ;;
    *)
        echo "fuzz.sh: unknown target '$target' (targets: ${all_targets[*]})" >&2
        exit 2
        ;;
    esac
done

# The longest input each target is given: a CSV file needs room for a few rows, a structure
# description for a couple of dozen objects, a YAML config or map file for a realistic one.
max_len() {
    case "$1" in
    fuzz_csv_import) echo 8192 ;;
    fuzz_h5_input) echo 2048 ;;
    *) echo 4096 ;;
    esac
}
# The dictionary of each target, where there is one.
dictionary() {
    case "$1" in
    fuzz_csv_import) echo tests/fuzz/csv.dict ;;
    fuzz_yaml) echo tests/fuzz/yaml.dict ;;
    fuzz_rfm_map) echo tests/fuzz/rfm_map.dict ;;
    esac
}

echo "fuzz: configure and build (preset fuzz)"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)" >/dev/null

# The targets' scratch files (temporary CSV and HDF5 files) go to a directory of this run, on
# tmpfs where there is one, removed at the end even when a target crashed.
scratch_base=/dev/shm
[ -d "$scratch_base" ] && [ -w "$scratch_base" ] || scratch_base=${TMPDIR:-/tmp}
scratch=$(mktemp -d "$scratch_base/kseg-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

status=0
for target in "${targets[@]}"; do
    work=build/fuzz/work/$target
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp tests/fuzz/corpus/"$target"/* "$work/corpus/"
    options=(-max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10
             -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/")
    dict=$(dictionary "$target")
    [ -z "$dict" ] || options+=(-dict="$dict")
    # The structure-aware target's seeds are tiny; longer inputs describe more objects, so it
    # may use its whole max_len at once instead of growing towards it.
    [ "$target" != fuzz_h5_input ] || options+=(-len_control=0)
    # One OpenMP thread: a run is then deterministic, and libFuzzer's coverage is not muddled by
    # worker threads. Leaks fail the run; so does any undefined behaviour.
    set +e
    OMP_NUM_THREADS=1 KSEG_FUZZ_TMPDIR="$scratch" \
        ASAN_OPTIONS=detect_leaks=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        build/fuzz/tests/fuzz/"$target" "${options[@]}" "$work/corpus" >"$work/log" 2>&1
    code=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
    found=$(find "$work/artifacts" -type f \
                \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) |
            sort)
    if [ "$code" -ne 0 ] || [ -n "$found" ]; then
        status=1
        echo "fuzz: $target FAILED after ${runs:-?} runs (exit $code); the report:"
        grep -E -A 30 '^(==[0-9]+==ERROR|.*runtime error:|==[0-9]+== ERROR: libFuzzer)' \
            "$work/log" | head -60 || tail -40 "$work/log"
        for file in $found; do
            echo "fuzz: reproducer: $file (rerun: build/fuzz/tests/fuzz/$target $file)"
        done
        echo "fuzz: full log: $work/log"
    else
        echo "fuzz: $target ok: ${runs:-?} runs in ${seconds} s (${rate:-?}/s)"
    fi
done
exit $status
