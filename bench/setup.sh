#!/usr/bin/env bash
# Installs the benchmark peers into the project's virtual environment (.venv, made by
# scripts/setup.sh): scikit-learn with threadpoolctl, scikit-learn-intelex (oneDAL), faiss-cpu and
# matplotlib for the fixed-work k-means comparison, and pandas, DuckDB, Polars and pyarrow for the
# RFM comparison (rfm_vs_dataframes.py).
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

# The k-means peers beyond scikit-learn, and matplotlib for the chart, are optional in the same way:
# kmeans_fixed_work.py reports a peer that does not import as "not installed" and skips the chart
# without matplotlib. faiss-cpu wheels bundle their own OpenBLAS; sklearnex brings oneDAL (daal).
kmeans_peers=("scikit-learn-intelex>=2024.0:sklearnex" "faiss-cpu>=1.7:faiss" "matplotlib>=3.5:matplotlib")
missing_kmeans_peers=()
for entry in "${kmeans_peers[@]}"; do
    requirement="${entry%%:*}"
    module="${entry##*:}"
    if .venv/bin/python -c "import ${module}" 2>/dev/null; then
        continue
    fi
    echo "bench/setup: installing ${requirement} into .venv"
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check "${requirement}" ||
        ! .venv/bin/python -c "import ${module}" 2>/dev/null; then
        echo "bench/setup: note: ${requirement} could not be installed; kmeans_fixed_work.py will report ${module} as not installed"
        missing_kmeans_peers+=("${module}")
    fi
done

# bench/floor compiles bench/floor.c against OpenBLAS (Debian: libopenblas-dev); it is not a Python
# peer, so its absence is a note too.
if [ ! -e /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ]; then
    echo "bench/setup: note: OpenBLAS headers are missing (apt-get install libopenblas-dev); bench/floor will not build"
fi

# Peak memory is read with GNU time (Debian package "time") when it is there; the benchmark falls
# back to a Python wrapper otherwise, so its absence is only reported, not fatal.
if [ ! -x /usr/bin/time ]; then
    echo "bench/setup: note: /usr/bin/time is missing (apt-get install time); a Python wrapper will measure peak RSS instead"
fi
versions=$(.venv/bin/python - <<'PYTHON'
import importlib.metadata
names = ["scikit-learn", "threadpoolctl", "scikit-learn-intelex", "daal", "faiss-cpu", "matplotlib",
         "pandas", "duckdb", "polars", "pyarrow"]
found = []
for name in names:
    try:
        found.append(f"{name} {importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
        found.append(f"{name} not installed")
print(", ".join(found))
PYTHON
)
if [ ${#missing_kmeans_peers[@]} -gt 0 ]; then
    echo "bench/setup: note: not installed: ${missing_kmeans_peers[*]}"
fi
if [ ${#missing_rfm_peers[@]} -gt 0 ]; then
    echo "bench/setup: note: not installed: ${missing_rfm_peers[*]}"
fi
echo "bench/setup: done (${versions})"
