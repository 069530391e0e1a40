#!/usr/bin/env bash
# ThreadSanitizer run of the kseg command, where OpenMP meets threads and HDF5 outside the engine:
# `kseg rfm` reads the next block of transactions on a thread of its own while OpenMP aggregates
# the current one (so the log must be longer than one read block of 2^20 rows), and `kseg run`
# goes from a transaction file to every output file. Both run at 1 and 4 threads and must write
# identical tables. Run by ctest with KSEG set to the TSan-built kseg binary.
set -eu

: "${KSEG:?set KSEG to the kseg binary}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"

# kseg's output goes to ctest, which fails the test on any TSan report in it.
step() {
    echo "tsan_cli: $*"
    "$@"
}

step "$KSEG" generate transactions --transactions 1100000 --customers 60000 --seed 3 \
    --threads 4 -o long.h5 -q
for threads in 1 4; do
    step "$KSEG" rfm long.h5 -o "rfm$threads.h5" --csv "rfm$threads.csv" --threads "$threads" -q
done
cmp rfm1.csv rfm4.csv

step "$KSEG" generate transactions --transactions 200000 --customers 20000 --seed 5 \
    -o short.h5 -q
cat >run.yaml <<'EOF'
title: ThreadSanitizer run
input:
  transactions: short.h5
prepare:
  features: [recency, frequency, monetary, tenure]
  transforms: {frequency: log1p, monetary: log1p}
cluster:
  k: 2..4
  seed: 7
  silhouette_sample: 2000
label:
  min_customer_share: 0.05
schemes:
  rfm: true
  lifecycle: {new_days: 90, lapsed_days: 180}
  categories: [channel]
report:
  value: monetary
EOF
for threads in 1 4; do
    step "$KSEG" run run.yaml -o "run$threads" --threads "$threads" --no-html -q
done
for file in customers.csv segments.csv report.json; do
    cmp "run1/$file" "run4/$file"
done
echo "tsan_cli: kseg rfm and kseg run wrote identical tables at 1 and 4 threads"
