#!/usr/bin/env bash
# CLI-level checks of `kseg generate` and `kseg inspect`: help and exit codes, usage errors
# (exit 2), bad input (exit 1, one "kseg COMMAND: ..." line naming the problem), the files they
# write, and that a failed run leaves no file or temporary file behind.
# Run by ctest with KSEG set to the kseg binary.
set -eu

: "${KSEG:?set KSEG to the kseg binary}"
scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT

passed=0
failed=0

# expect NAME STATUS PATTERN -- COMMAND...: runs COMMAND, checks its exit status and that its
# stderr (for failures) or stdout (for success) matches the extended regex PATTERN (empty: no
# check); failures must be exactly one line on stderr.
expect() {
    local name=$1 status=$2 pattern=$3
    shift 4
    local out="$scratch/stdout" err="$scratch/stderr" actual=0
    "$@" >"$out" 2>"$err" || actual=$?
    local text="$out"
    [ "$status" -ne 0 ] && text="$err"
    local problem=""
    if [ "$actual" -ne "$status" ]; then
        problem="exit status $actual, expected $status"
    elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" "$text"; then
        problem="output does not match /$pattern/"
    elif [ "$status" -ne 0 ] && [ "$(wc -l <"$err")" -ne 1 ]; then
        problem="expected one line on stderr, got $(wc -l <"$err")"
    fi
    if [ -z "$problem" ]; then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name: $problem"
        sed 's/^/     | /' "$err" "$out" | head -20
        failed=$((failed + 1))
    fi
}

# check NAME CONDITION...: a plain assertion on the file system.
check() {
    local name=$1
    shift
    if "$@"; then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
    fi
}

differ() {
    ! cmp -s "$1" "$2"
}

no_temporary_files() {
    [ -z "$(find "$scratch" -name '.*.tmp.*' -print -quit)" ]
}

cd "$scratch"

# ---------------------------------------------------------------- help
expect "generate --help"            0 "kseg generate customers" -- "$KSEG" generate --help
expect "generate customers --help"  0 "--segments K.*default 6" -- "$KSEG" generate customers --help
expect "generate blobs --help"      0 "--sigma X.*default 1"    -- "$KSEG" generate blobs --help
expect "inspect --help"             0 "usage: kseg inspect"     -- "$KSEG" inspect --help

# ---------------------------------------------------------------- usage errors (exit 2)
expect "generate without kind"      2 "^kseg generate: expected customers, transactions or blobs" -- "$KSEG" generate
expect "generate unknown kind"      2 "^kseg generate: unknown kind 'people'" -- "$KSEG" generate people --n 5 -o x.h5
expect "unknown option"             2 "^kseg generate: unknown option '--colour'" -- "$KSEG" generate customers --n 5 -o x.h5 --colour red
expect "blob option on customers"   2 "unknown option '--sigma'" -- "$KSEG" generate customers --n 5 -o x.h5 --sigma 1
expect "missing option value"       2 "option -o needs a value" -- "$KSEG" generate customers --n 5 -o
expect "missing --n"                2 "missing --n"             -- "$KSEG" generate customers -o x.h5
expect "missing -o"                 2 "missing -o"              -- "$KSEG" generate customers --n 5
expect "blobs missing --d"          2 "missing --d"             -- "$KSEG" generate blobs --n 5 --k 2 -o x.h5
expect "blobs missing --k"          2 "missing --k"             -- "$KSEG" generate blobs --n 5 --d 2 -o x.h5
expect "--n not a number"           2 "^kseg generate: --n: .*'ten'" -- "$KSEG" generate customers --n ten -o x.h5
expect "--n zero"                   2 "^kseg generate: --n: "   -- "$KSEG" generate customers --n 0 -o x.h5
expect "--n negative"               2 "^kseg generate: --n: "   -- "$KSEG" generate customers --n -5 -o x.h5
expect "--segments too many"        2 "--segments: expected an integer in \[1, 8\]" -- "$KSEG" generate customers --n 5 --segments 9 -o x.h5
expect "--gzip out of range"        2 "--gzip: "                -- "$KSEG" generate customers --n 5 --gzip 10 -o x.h5
expect "--seed negative"            2 "--seed: "                -- "$KSEG" generate customers --n 5 --seed -1 -o x.h5
expect "--chunk-rows zero"          2 "--chunk-rows: "          -- "$KSEG" generate customers --n 5 --chunk-rows 0 -o x.h5
expect "--sigma negative"           2 "--sigma: "               -- "$KSEG" generate blobs --n 5 --d 2 --k 2 --sigma -1 -o x.h5
expect "--spread not finite"        2 "--spread: "              -- "$KSEG" generate blobs --n 5 --d 2 --k 2 --spread inf -o x.h5
expect "extra argument"             2 "unexpected argument 'more'" -- "$KSEG" generate customers --n 5 -o x.h5 more
expect "inspect without file"       2 "expected exactly one FILE.h5" -- "$KSEG" inspect
expect "inspect unknown option"     2 "unknown option '--deep'" -- "$KSEG" inspect --deep x.h5
check  "no file written by usage errors" test ! -e x.h5

# ---------------------------------------------------------------- bad input (exit 1)
expect "output directory missing"   1 "^kseg generate: cannot write nodir/x.h5: directory nodir does not exist" -- "$KSEG" generate customers --n 5 -o nodir/x.h5
expect "output is a directory"      1 "^kseg generate: cannot write .*: is a directory" -- "$KSEG" generate customers --n 5 -o "$scratch"
if [ "$(id -u)" -ne 0 ]; then
    mkdir locked && chmod 0500 locked
    expect "output directory read-only" 1 "directory locked is not writable" -- "$KSEG" generate customers --n 5 -o locked/x.h5
fi
expect "inspect missing file"       1 "^kseg inspect: cannot open missing.h5: no such file" -- "$KSEG" inspect missing.h5
printf 'id,recency\n1,2\n' > table.csv
expect "inspect a CSV file"         1 "^kseg inspect: cannot open table.csv: not an HDF5 file" -- "$KSEG" inspect table.csv
expect "inspect a directory"        1 "is a directory"          -- "$KSEG" inspect "$scratch"

# ---------------------------------------------------------------- successful runs
expect "generate customers"         0 "^generated 1000 rows x 9 columns \(6 segments, seed 5\) -> customers.h5$" -- "$KSEG" generate customers --n 1000 --seed 5 -o customers.h5
expect "inspect customers"          0 "^/customers/features +dataset +float32 +\[1000, 9\] .*columns: recency_days, frequency, monetary" -- "$KSEG" inspect customers.h5
expect "inspect lists ids"          0 "^/customers/id +dataset +int64 +\[1000\]" -- "$KSEG" inspect customers.h5
expect "inspect lists truth"        0 "^/truth/segment +dataset +int32 +\[1000\].*names: champions" -- "$KSEG" inspect customers.h5
expect "inspect a subtree"          0 "^/truth/segment"         -- "$KSEG" inspect customers.h5:/truth
check  "subtree leaves out others"  test "$(grep -c customers "$scratch/stdout")" -eq 0
expect "inspect a missing subtree"  1 "no group or dataset /nothing" -- "$KSEG" inspect customers.h5:/nothing

# The same seed gives the same data whatever the thread count and chunking; output is atomic.
expect "same seed again"            0 ""                        -- "$KSEG" generate customers --n 1000 --seed 5 --threads 3 --chunk-rows 100 --gzip 6 -q -o again.h5
check  "quiet prints nothing"       test ! -s "$scratch/stdout"
if command -v h5dump >/dev/null 2>&1; then
    h5dump -d /customers/features -y -w 0 customers.h5 | grep -v '^HDF5' > a.txt
    h5dump -d /customers/features -y -w 0 again.h5 | grep -v '^HDF5' > b.txt
    check "same seed, same values" cmp -s a.txt b.txt
    h5dump -d /customers/features -p again.h5 | grep -q 'DEFLATE' && deflate=yes || deflate=no
    check "--gzip compresses" test "$deflate" = yes
fi
"$KSEG" generate customers --n 1000 --seed 6 -q -o other.h5
check  "different seed, different file" differ customers.h5 other.h5

expect "generate blobs"             0 "^generated 500 rows x 3 columns \(4 blobs, seed 1\) -> blobs.h5$" -- "$KSEG" generate blobs --n 500 --d 3 --k 4 -o blobs.h5
expect "blob centers stored"        0 "^/truth/centers +dataset +float64 +\[4, 3\]" -- "$KSEG" inspect blobs.h5
expect "blob columns named"         0 "columns: x0, x1, x2"     -- "$KSEG" inspect blobs.h5

# A failed run never replaces an existing file.
cp customers.h5 before.h5
expect "bad run keeps old file"     2 "--segments: "            -- "$KSEG" generate customers --n 10 --segments 0 -o customers.h5
check  "old file untouched"         cmp -s customers.h5 before.h5
check  "no temporary files left"    no_temporary_files

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
