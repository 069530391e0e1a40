#!/usr/bin/env bash
# Installs the benchmark peers into the project's virtual environment (.venv, made by
# scripts/setup.sh): scikit-learn with threadpoolctl for the fixed-work k-means comparison, and
# pandas, DuckDB, Polars and pyarrow for the RFM comparison (rfm_vs_dataframes.py).
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

# The RFM peers are installed one by one: a peer whose wheel is not available for this platform
# or Python must not keep the others out. rfm_vs_dataframes.py reports a missing peer as such in its
# table and measures the rest, so a failure here is a note, not an error.
rfm_peers=("pandas>=2.0:pandas" "duckdb>=1.0:duckdb" "polars>=1.0:polars" "pyarrow>=14:pyarrow")
missing_rfm_peers=()
for entry in "${rfm_peers[@]}"; do
    requirement="${entry%%:*}"
    module="${entry##*:}"
    if .venv/bin/python -c "import ${module}" 2>/dev/null; then
        continue
    fi
    echo "bench/setup: installing ${requirement} into .venv"
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check "${requirement}" ||
        ! .venv/bin/python -c "import ${module}" 2>/dev/null; then
        echo "bench/setup: note: ${requirement} could not be installed; the RFM benchmark will report ${module} as not installed"
        missing_rfm_peers+=("${module}")
    fi
done

# Peak memory is read with GNU time (Debian package "time") when it is there; the benchmark falls
# back to a Python wrapper otherwise, so its absence is only reported, not fatal.
if [ ! -x /usr/bin/time ]; then
    echo "bench/setup: note: /usr/bin/time is missing (apt-get install time); a Python wrapper will measure peak RSS instead"
fi
versions=$(.venv/bin/python - <<'PYTHON'
import importlib.metadata
names = ["scikit-learn", "threadpoolctl", "pandas", "duckdb", "polars", "pyarrow"]
found = []
for name in names:
    try:
        found.append(f"{name} {importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
        found.append(f"{name} not installed")
print(", ".join(found))
PYTHON
)
if [ ${#missing_rfm_peers[@]} -gt 0 ]; then
    echo "bench/setup: note: not installed: ${missing_rfm_peers[*]}"
fi
echo "bench/setup: done (${versions})"
