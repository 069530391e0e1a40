#!/usr/bin/env bash
# Installs the benchmark peers into the project's virtual environment (.venv, made by
# scripts/setup.sh): scikit-learn with threadpoolctl for the fixed-work k-means comparison.
# Idempotent: a second run installs nothing when everything is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    echo "bench/setup: .venv is missing; run scripts/setup.sh first (it builds the venv and the test tooling)" >&2
    exit 1
fi

# The peers are pinned only from below, like tests/requirements.txt, so that the benchmark runs
# against whatever current release a user has; the exact versions are printed in every result table.
peers=("numpy>=1.24" "h5py>=3.8" "scikit-learn>=1.3" "threadpoolctl>=3.1")
if ! .venv/bin/python -c 'import numpy, h5py, sklearn, threadpoolctl' 2>/dev/null; then
    echo "bench/setup: installing ${peers[*]} into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check "${peers[@]}"
fi

# Peak memory is read with GNU time (Debian package "time") when it is there; the benchmark falls
# back to a Python wrapper otherwise, so its absence is only reported, not fatal.
if [ ! -x /usr/bin/time ]; then
    echo "bench/setup: note: /usr/bin/time is missing (apt-get install time); a Python wrapper will measure peak RSS instead"
fi
echo "bench/setup: done ($(.venv/bin/python -c 'import sklearn, threadpoolctl; print("scikit-learn", sklearn.__version__, "threadpoolctl", threadpoolctl.__version__)'))"
