"""Resource limits: a job that cannot fit in memory is refused before anything is allocated, with
the amount it needs and the amount available named on one line, and nothing is written.

The inputs declare huge shapes without holding the data (chunked datasets never written, so the
files are a few kilobytes), and KSEG_MEMORY_LIMIT lowers the budget to make ordinary shapes too
large; the refusal must come before any allocation, so the tests also finish at once."""
import os
import re
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import expect_failure, run_kseg, run_cases  # noqa: E402

AMOUNTS = re.compile(r"needs ([0-9.]+ [KMGTPE]?i?B) but only ([0-9.]+ [KMGTPE]?i?B) of memory "
                     r"is available")


def expect_refusal(tmp, args, fragments, environment=None):
    """The shared one-line refusal check (tests/oracle/common.py), plus both amounts named."""
    saved = dict(os.environ)
    os.environ.update(environment or {})
    try:
        line = expect_failure(tmp, args, fragments)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert AMOUNTS.search(line), f"amounts not named: {line}"
    return line


def declared_only(path, shape, dtype="f4", name="/customers/features"):
    """A dataset with a declared shape and no data written: the file stays tiny."""
    with h5py.File(path, "w") as f:
        chunk = (min(shape[0], 65536),) + tuple(shape[1:])
        dataset = f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunk)
        if len(shape) == 2:
            dataset.attrs["columns"] = [f"x{j}" for j in range(shape[1])]
    assert os.path.getsize(path) < 100_000


def case_huge_declared_features_cluster(tmp):
    path = os.path.join(tmp, "huge.h5")
    declared_only(path, (10**12, 16))
    line = expect_refusal(tmp, ["cluster", path, "-k", 3, "-o", os.path.join(tmp, "out.h5")],
                          ["huge.h5:/customers/features", "1000000000000 x 16 float32",
                           "58.2 TiB"])
    assert "TiB" in AMOUNTS.search(line).group(1)


def case_huge_declared_features_float64_predict(tmp):
    data = os.path.join(tmp, "small.h5")
    run_kseg("generate", "blobs", "--n", 500, "--d", 4, "--k", 2, "-o", data)
    model = os.path.join(tmp, "model.h5")
    run_kseg("cluster", data, "-k", 2, "-o", model)
    huge = os.path.join(tmp, "huge.h5")
    declared_only(huge, (10**11, 4), dtype="f8")
    expect_refusal(tmp, ["predict", "--model", model, huge, "-o", os.path.join(tmp, "out.h5")],
                   ["huge.h5:/customers/features", "100000000000 x 4"])


def case_huge_declared_ids(tmp):
    path = os.path.join(tmp, "ids.h5")
    with h5py.File(path, "w") as f:
        f["/customers/features"] = np.zeros((10, 2), dtype="f4")
    declared_only(path + ".tmp", (10**13,), dtype="i8", name="/weights")
    # A weights dataset whose declared length is absurd: it is refused by its length before
    # its size, or by its size; either way before allocating.
    result = run_kseg("cluster", path, "-k", 2, "--weights", path + ".tmp:/weights", "-o",
                      os.path.join(tmp, "out.h5"), check=False)
    os.unlink(path + ".tmp")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "/weights" in lines[0], lines[0]
    assert not os.path.exists(os.path.join(tmp, "out.h5"))


def case_memory_limit_for_the_data(tmp):
    data = os.path.join(tmp, "blobs.h5")
    run_kseg("generate", "blobs", "--n", 400_000, "--d", 8, "--k", 4, "-o", data)
    # 400000 x 8 float32 is 12.2 MiB; a 4 MiB budget cannot hold it.
    expect_refusal(tmp, ["cluster", data, "-k", 4, "-o", os.path.join(tmp, "out.h5")],
                   ["blobs.h5:/customers/features", "12.2 MiB"],
                   environment={"KSEG_MEMORY_LIMIT": "4M"})


def case_memory_limit_for_the_kmeans_workspace(tmp):
    data = os.path.join(tmp, "blobs.h5")
    run_kseg("generate", "blobs", "--n", 200_000, "--d", 8, "--k", 4, "-o", data)
    # The data (6 MiB) fits in 200 MiB, but k = 150000 centers need far more workspace.
    line = expect_refusal(tmp, ["cluster", data, "-k", 150_000, "--init", "random",
                                "--max-iter", 1, "-o", os.path.join(tmp, "out.h5")],
                          ["k-means with k = 150000 on 200000 rows x 8 features"],
                          environment={"KSEG_MEMORY_LIMIT": "200M"})
    needed = AMOUNTS.search(line).group(1)
    assert needed.endswith("MiB") or needed.endswith("GiB"), line
    # The same job with the default budget runs (the refusal was the limit's doing): a smaller
    # k keeps it quick.
    run_kseg("cluster", data, "-k", 64, "--init", "random", "--max-iter", 2, "-o",
             os.path.join(tmp, "out.h5"))


def main():
    run_cases(globals())


if __name__ == "__main__":
    main()
