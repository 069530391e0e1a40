"""Bad input to `kseg cluster` and `kseg predict`: each case must print exactly one line on stderr
naming what was wrong and where, exit non-zero, and leave no output file (nor a temporary one)."""
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import expect_failure, run_kseg, run_cases  # noqa: E402


def write(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f[name.replace("__", "/")] = value


def good_data(n=100, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def case_missing_file(tmp):
    expect_failure(tmp, ["cluster", os.path.join(tmp, "nope.h5"), "-k", 2, "-o",
                         os.path.join(tmp, "out.h5")], ["nope.h5"])


def case_missing_dataset(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data())
    expect_failure(tmp, ["cluster", f"{path}:/no/such", "-k", 2, "-o", os.path.join(tmp, "out.h5")],
                   ["/no/such"])


def case_missing_column(tmp):
    path = os.path.join(tmp, "in.h5")
    with h5py.File(path, "w") as f:
        f["/customers/features"] = good_data()
        f["/customers/features"].attrs["columns"] = ["a", "b", "c"]
    expect_failure(tmp, ["cluster", path, "-k", 2, "--columns", "a,zzz", "-o",
                         os.path.join(tmp, "out.h5")], ["zzz"])


def case_rank_three(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, cube=np.zeros((4, 3, 2), dtype=np.float32))
    expect_failure(tmp, ["cluster", f"{path}:/cube", "-k", 2, "-o", os.path.join(tmp, "out.h5")],
                   ["/cube"])


def case_unequal_columns(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, table__a=np.arange(10.0), table__b=np.arange(9.0))
    expect_failure(tmp, ["cluster", f"{path}:/table", "-k", 2, "-o", os.path.join(tmp, "out.h5")],
                   ["/table"])


def case_string_type(tmp):
    path = os.path.join(tmp, "in.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("names", data=np.array([[b"a", b"b"], [b"c", b"d"]]))
    expect_failure(tmp, ["cluster", f"{path}:/names", "-k", 1, "-o", os.path.join(tmp, "out.h5")],
                   ["/names"])


def case_nan(tmp):
    path = os.path.join(tmp, "in.h5")
    x = good_data()
    x[17, 2] = np.nan
    with h5py.File(path, "w") as f:
        f["/customers/features"] = x
        f["/customers/features"].attrs["columns"] = ["recency", "frequency", "monetary"]
    expect_failure(tmp, ["cluster", path, "-k", 2, "-o", os.path.join(tmp, "out.h5")],
                   ["row 17", "monetary"])


def case_inf(tmp):
    path = os.path.join(tmp, "in.h5")
    x = good_data().astype(np.float64)
    x[3, 0] = np.inf
    write(path, customers__features=x)
    expect_failure(tmp, ["cluster", path, "-k", 2, "-o", os.path.join(tmp, "out.h5")], ["row 3"])


def case_no_rows(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=np.zeros((0, 3), dtype=np.float32))
    expect_failure(tmp, ["cluster", path, "-k", 2, "-o", os.path.join(tmp, "out.h5")], [path])


def case_no_columns(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=np.zeros((5, 0), dtype=np.float32))
    expect_failure(tmp, ["cluster", path, "-k", 2, "-o", os.path.join(tmp, "out.h5")], [path])


def case_k_zero(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data())
    expect_failure(tmp, ["cluster", path, "-k", 0, "-o", os.path.join(tmp, "out.h5")], ["-k"],
                   code=2)


def case_k_above_n(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data(n=10))
    expect_failure(tmp, ["cluster", path, "-k", 11, "-o", os.path.join(tmp, "out.h5")],
                   ["exceeds the number of rows (10)"])


def case_negative_weight(tmp):
    path = os.path.join(tmp, "in.h5")
    w = np.ones(100)
    w[42] = -1
    write(path, customers__features=good_data(), w=w)
    expect_failure(tmp, ["cluster", path, "-k", 2, "--weights", f"{path}:/w", "-o",
                         os.path.join(tmp, "out.h5")], ["row 42"])


def case_zero_weights(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data(), w=np.zeros(100))
    expect_failure(tmp, ["cluster", path, "-k", 2, "--weights", f"{path}:/w", "-o",
                         os.path.join(tmp, "out.h5")], ["zero"])


def case_weights_wrong_length(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data(), w=np.ones(99))
    expect_failure(tmp, ["cluster", path, "-k", 2, "--weights", f"{path}:/w", "-o",
                         os.path.join(tmp, "out.h5")], ["/w"])


def case_unwritable_output(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data())
    expect_failure(tmp, ["cluster", path, "-k", 2, "-o", os.path.join(tmp, "missing-dir", "o.h5")],
                   ["missing-dir"])


def case_output_is_input(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data())
    before = open(path, "rb").read()
    expect_failure(tmp, ["cluster", path, "-k", 2, "-o", path], ["input"])
    assert open(path, "rb").read() == before, "input was modified"


def case_existing_output_survives_failure(tmp):
    path = os.path.join(tmp, "in.h5")
    x = good_data()
    x[5, 1] = np.nan
    write(path, customers__features=x)
    out = os.path.join(tmp, "out.h5")
    with open(out, "wb") as f:
        f.write(b"previous result")
    expect_failure(tmp, ["cluster", path, "-k", 2, "-o", out], ["row 5"])
    assert open(out, "rb").read() == b"previous result", "existing output was damaged"


def case_fewer_distinct_rows_warns(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=np.repeat(np.array([[1, 1], [5, 5]], np.float32), 10, axis=0))
    out = os.path.join(tmp, "out.h5")
    result = run_kseg("cluster", path, "-k", 4, "-o", out, "--quiet", check=False)
    assert result.returncode == 0, result.stderr
    assert "fewer distinct rows" in result.stderr, result.stderr
    with h5py.File(out, "r") as f:
        labels = f["/labels/cluster"][:]
        assert labels.min() >= 0 and labels.max() < 4
        assert f["/model/centroids"].attrs["inertia"] == 0.0


def case_usage_errors(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data())
    expect_failure(tmp, ["cluster", path, "-k", "two", "-o", os.path.join(tmp, "out.h5")],
                   ["-k", "two"], code=2)
    expect_failure(tmp, ["cluster", path, "-k", 2, "--bogus", "-o", os.path.join(tmp, "out.h5")],
                   ["--bogus"], code=2)
    expect_failure(tmp, ["cluster", path, "-k", 2], ["-o"], code=2)
    expect_failure(tmp, ["cluster", path, "-k", 2, "--tol", "-1", "-o",
                         os.path.join(tmp, "out.h5")], ["--tol"], code=2)


def case_predict_other_feature_set(tmp):
    path = os.path.join(tmp, "in.h5")
    with h5py.File(path, "w") as f:
        f["/customers/features"] = good_data()
        f["/customers/features"].attrs["columns"] = ["recency", "frequency", "monetary"]
    model = os.path.join(tmp, "model.h5")
    run_kseg("cluster", path, "-k", 3, "-o", model, "--quiet")
    other = os.path.join(tmp, "other.h5")
    with h5py.File(other, "w") as f:
        f["/customers/features"] = good_data()
        f["/customers/features"].attrs["columns"] = ["age", "income", "monetary"]
    expect_failure(tmp, ["predict", "--model", model, other, "-o", os.path.join(tmp, "out.h5")],
                   ["recency", model])


def case_weights_or_init_file_as_output(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data())
    aux = os.path.join(tmp, "aux.h5")
    write(aux, w=np.ones(100), c=good_data()[:3].astype(np.float64))
    before = open(aux, "rb").read()
    expect_failure(tmp, ["cluster", path, "-k", 2, "--weights", f"{aux}:/w", "-o", aux],
                   ["--weights"])
    expect_failure(tmp, ["cluster", path, "--init", f"{aux}:/c", "-o", aux], ["--init"])
    assert open(aux, "rb").read() == before, "an input file was modified"


def case_huge_k_is_a_shape_error_not_an_allocation(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data())
    expect_failure(tmp, ["cluster", path, "-k", 2147483647, "-o", os.path.join(tmp, "out.h5")],
                   ["exceeds the number of rows (100)"])


def case_values_too_large_for_squared_distances(tmp):
    path = os.path.join(tmp, "in.h5")
    x = np.random.default_rng(1).choice([-1e200, 1e200], size=(100, 2))
    write(path, customers__features=x)
    expect_failure(tmp, ["cluster", path, "-k", 3, "--init", "random", "--n-init", 3, "-o",
                         os.path.join(tmp, "out.h5")], ["not finite", "rescale"])


def case_negative_seed_with_blank(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data())
    expect_failure(tmp, ["cluster", path, "-k", 2, "--seed", " -1", "-o",
                         os.path.join(tmp, "out.h5")], ["--seed"], code=2)


def case_write_failure_leaves_nothing(tmp):
    import resource
    import signal
    import subprocess
    from common import KSEG
    data = os.path.join(tmp, "customers.h5")
    run_kseg("generate", "customers", "--n", 300000, "--seed", 1, "-o", data)
    out_dir = os.path.join(tmp, "out")
    os.mkdir(out_dir)

    def limit_file_size():
        # Writes beyond 64 KiB fail with EFBIG instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

    result = subprocess.run([KSEG, "cluster", data, "-k", "4", "-o",
                             os.path.join(out_dir, "out.h5"), "--quiet"],
                            capture_output=True, text=True, preexec_fn=limit_file_size)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, f"exit {result.returncode}: {result.stderr}"
    assert len(lines) == 1 and "out.h5" in lines[0], lines
    assert os.listdir(out_dir) == [], f"left behind: {os.listdir(out_dir)}"


def case_help_everywhere(tmp):
    for command in ([], ["cluster"], ["predict"], ["generate"], ["inspect"]):
        result = run_kseg(*command, "--help", check=False)
        assert result.returncode == 0 and "usage" in result.stdout, (command, result.stderr)


def case_bad_algorithm_and_bounds_memory(tmp):
    path = os.path.join(tmp, "in.h5")
    write(path, customers__features=good_data(n=2000, d=3))
    out = os.path.join(tmp, "out.h5")
    expect_failure(tmp, ["cluster", path, "-k", 4, "-o", out, "--algorithm", "kmedoids"],
                   ["--algorithm", "expected lloyd, hamerly, elkan, yinyang, auto or minibatch",
                    "'kmedoids'"], code=2, kept=["in.h5"])
    # 0 would read as "no bounds memory" but means "no limit" in the options: refused.
    for bad in ["12Q", "", "-5", "1.5.2", "G", "0", "0.4"]:
        expect_failure(tmp, ["cluster", path, "-k", 4, "-o", out, "--bounds-memory", bad],
                       ["--bounds-memory", "expected a size of at least 1 byte", f"got '{bad}'"],
                       code=2,
                       kept=["in.h5"])
    # A requested bound algorithm over the limit is refused before the fit, naming both sizes.
    expect_failure(tmp, ["cluster", path, "-k", 4, "-o", out, "--algorithm", "elkan",
                         "--bounds-memory", "1K"],
                   ["the elkan bounds need", "n = 2000 rows, k = 4",
                    "the bounds memory limit is 1.00 KiB"], kept=["in.h5"])
    expect_failure(tmp, ["cluster", path, "-k", 4, "-o", out, "--algorithm", "yinyang",
                         "--bounds-memory", "100"],
                   ["the yinyang bounds need", "limit is 100 B"], kept=["in.h5"])


def main():
    run_cases(globals())


if __name__ == "__main__":
    main()
