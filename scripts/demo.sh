#!/usr/bin/env bash
# The end-to-end demo on generated data (works on any machine, no downloads): builds kseg in
# release mode, then (1) generates a transaction log and turns it into RFM scores and named
# segments, printing the segment summary, and (2) generates a customer population and clusters it
# with k-means, printing the cluster profiles.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" >/dev/null
kseg=build/release/kseg
out=build/demo
mkdir -p "$out"

echo "== RFM segments from 2 million generated transactions"
"$kseg" generate transactions --transactions 2000000 --customers 200000 --seed 7 -o "$out/transactions.h5"
"$kseg" rfm "$out/transactions.h5" -o "$out/rfm.h5" --csv "$out/rfm.csv"

echo
echo "== k-means clusters of 200,000 generated customers"
"$kseg" generate customers --n 200000 --seed 7 -o "$out/customers.h5"
"$kseg" cluster "$out/customers.h5" -k 6 --seed 7 -o "$out/result.h5"
