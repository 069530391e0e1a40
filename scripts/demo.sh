#!/usr/bin/env bash
# The end-to-end demo on generated data (works on any machine, no downloads): builds kseg in
# release mode, generates a transaction log of 2 million lines for 200,000 customers, and runs the
# whole pipeline of examples/demo.yaml (RFM, k sweep, named segments, schemes, report), printing
# the prioritized segment table. Outputs land in build/demo/ (report/index.html has the charts).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" >/dev/null
kseg=build/release/kseg
# The HTML report is drawn with matplotlib: setup.sh installs it for Debian's python3 and .venv.
if [ -z "${KSEG_PYTHON:-}" ] && [ -x .venv/bin/python ]; then
    export KSEG_PYTHON="$PWD/.venv/bin/python"
fi
out=build/demo
mkdir -p "$out"

"$kseg" generate transactions --transactions 2000000 --customers 200000 --seed 7 \
    -o "$out/transactions.h5"
"$kseg" run examples/demo.yaml -o "$out/run"
