"""`kseg cluster --memory-limit`: rows larger than the limit are mapped from a contiguous input or
staged from a gzip-chunked one, and the fit is bitwise the in-memory fit (centroids, labels, ids,
every iteration statistic but its seconds) for Lloyd and a bound algorithm; the mode is logged; a
NaN in mapped rows is still refused; a limit below the workspace and bad values are refused."""
import json
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import expect_failure, run_cases, run_kseg  # noqa: E402

ROWS, COLS = 40000, 6


def make_inputs(tmp, values=None):
    """The same rows as a contiguous dataset (with ids) and as gzip-compressed chunks."""
    rng = np.random.default_rng(11)
    if values is None:
        centers = rng.normal(scale=4.0, size=(8, COLS))
        values = (centers[rng.integers(0, 8, ROWS)] + rng.normal(size=(ROWS, COLS))).astype(
            np.float32)
    paths = {}
    for name, options in (("contiguous", {}),
                          ("gzip", {"chunks": (3000, COLS), "compression": "gzip"})):
        path = os.path.join(tmp, f"{name}.h5")
        with h5py.File(path, "w") as f:
            dataset = f.create_dataset("/customers/features", data=values, **options)
            dataset.attrs["columns"] = [f"f{j}" for j in range(COLS)]
            f["/customers/id"] = np.arange(ROWS, dtype=np.int64) * 7 + 1
        paths[name] = path
    return paths


def read_result(path):
    """Everything a fit writes that must not depend on where the rows were: bytes of each."""
    with h5py.File(path, "r") as f:
        found = {}
        def visit(name, item):
            if isinstance(item, h5py.Dataset) and not name.endswith("seconds"):
                found[name] = item[()].tobytes()
        f.visititems(visit)
        attributes = dict(f["/model/centroids"].attrs)
    return found, attributes["inertia"], attributes["n_iter"]


def fit(tmp, data, name, *extra):
    out = os.path.join(tmp, f"{name}.h5")
    log = os.path.join(tmp, f"{name}.jsonl")
    result = run_kseg("cluster", data, "-k", 8, "--seed", 5, "-o", out, "--log-json", log,
                      "--threads", 2, *extra)
    done = [json.loads(line) for line in open(log)][-1]
    return read_result(out), done["rows_mode"], result.stdout


def case_mapped_and_staged_equal_in_memory(tmp):
    paths = make_inputs(tmp)
    for algorithm in ("lloyd", "hamerly"):
        reference, mode, _ = fit(tmp, paths["contiguous"], f"memory-{algorithm}",
                                 "--algorithm", algorithm)
        assert mode == "memory", mode
        assert "labels/id" in reference[0] and "labels/cluster" in reference[0], list(reference[0])
        for kind, expected in (("contiguous", "mapped"), ("gzip", "staged")):
            result, mode, stdout = fit(tmp, paths[kind], f"{kind}-{algorithm}", "--algorithm",
                                       algorithm, "--memory-limit", "900K", "--scratch-dir", tmp)
            assert mode == expected, (kind, mode)
            line = [text for text in stdout.splitlines() if "exceed --memory-limit" in text]
            assert len(line) == 1, stdout
            assert (("mapped from " + paths[kind]) if expected == "mapped"
                    else ("staged to " + tmp)) in line[0], line[0]
            assert ("(contiguous)" if expected == "mapped" else "(gzip-compressed chunks)") \
                in line[0], line[0]
            assert result == reference, f"{kind} {algorithm}: differs from the in-memory fit"
    # The staged copy is unlinked as soon as it exists: nothing is left in the scratch directory.
    assert not [name for name in os.listdir(tmp) if name.startswith(".kseg-rows")]


def case_float64_subset_staged_and_dtype_mapped(tmp):
    paths = make_inputs(tmp)
    columns = ["--columns", "f3,f1,f5"]
    reference, _, _ = fit(tmp, paths["contiguous"], "subset-memory", *columns)
    result, mode, _ = fit(tmp, paths["contiguous"], "subset-staged", *columns,
                          "--memory-limit", "600K")
    assert mode == "staged" and result == reference
    reference, _, _ = fit(tmp, paths["contiguous"], "f64-memory", "--dtype", "float64")
    result, mode, stdout = fit(tmp, paths["contiguous"], "f64-staged", "--dtype", "float64",
                               "--memory-limit", "900K")
    assert mode == "staged" and "float32 values converted to float64" in stdout, stdout
    assert result == reference


def case_nonfinite_mapped_rows_refused(tmp):
    rng = np.random.default_rng(2)
    values = rng.normal(size=(ROWS, COLS)).astype(np.float32)
    values[31234, 4] = np.nan
    paths = make_inputs(tmp, values)
    expect_failure(tmp, ["cluster", paths["contiguous"], "-k", 3, "-o",
                         os.path.join(tmp, "nan.h5"), "--memory-limit", "900K", "--quiet"],
                   ["row 31234", "column 4", "NaN"])


def case_limit_below_workspace_refused(tmp):
    paths = make_inputs(tmp)
    # 40000 labels of 4 bytes and ids of 8 bytes: 468.8 KiB of workspace besides the rows.
    expect_failure(tmp, ["cluster", paths["contiguous"], "-k", 3, "-o",
                         os.path.join(tmp, "small.h5"), "--memory-limit", "100K"],
                   ["--memory-limit 100.0 KiB is less than the fit's workspace of 468.8 KiB"])


def case_bad_values_refused(tmp):
    paths = make_inputs(tmp)
    out = os.path.join(tmp, "bad.h5")
    for value in ("0", "abc", "-5"):
        expect_failure(tmp, ["cluster", paths["contiguous"], "-k", 3, "-o", out,
                             f"--memory-limit={value}"], ["--memory-limit", value], code=2)
    expect_failure(tmp, ["cluster", paths["contiguous"], "-k", 3, "-o", out, "--scratch-dir", tmp],
                   ["--scratch-dir needs --memory-limit"], code=2)
    expect_failure(tmp, ["cluster", paths["contiguous"], "-k", 3, "-o", out, "--memory-limit",
                         "1M", "--scratch-dir", os.path.join(tmp, "missing")],
                   ["not a directory"], code=1)


run_cases(globals())
