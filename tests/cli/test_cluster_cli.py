"""`kseg cluster` / `kseg predict` behaviour end to end: recovery of generated blobs, identical
output for any OMP_NUM_THREADS, predict reproducing the training labels, the JSON log, column
selection, column-group input and ids."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import KSEG, run_kseg, run_cases  # noqa: E402


def case_recovers_generated_blobs(tmp):
    data = os.path.join(tmp, "blobs.h5")
    run_kseg("generate", "blobs", "--n", 50000, "--d", 4, "--k", 7, "--seed", 3, "--sigma", 0.5,
             "-o", data)
    out = os.path.join(tmp, "out.h5")
    run_kseg("cluster", data, "-k", 7, "--n-init", 3, "-o", out, "--quiet")
    with h5py.File(data, "r") as f:
        truth = f["/truth/segment"][:]
    with h5py.File(out, "r") as f:
        labels = f["/labels/cluster"][:]
    ari = adjusted_rand_score(truth, labels)
    assert ari >= 0.99, f"adjusted Rand index {ari:.4f} < 0.99"


def read_result(path):
    with h5py.File(path, "r") as f:
        return (f["/model/centroids"][:].tobytes(), f["/labels/cluster"][:].tobytes(),
                f["/model/centroids"].attrs["inertia"], int(f["/model/centroids"].attrs["n_iter"]))


def case_identical_for_any_thread_count(tmp):
    data = os.path.join(tmp, "customers.h5")
    run_kseg("generate", "customers", "--n", 120000, "--seed", 5, "-o", data)
    results = []
    for threads in ("1", "2", "4"):
        out = os.path.join(tmp, f"out{threads}.h5")
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        completed = subprocess.run([KSEG, "cluster", data, "-k", "9", "--n-init", "2", "--seed", "11",
                                    "-o", out, "--quiet"], env=env, capture_output=True, text=True)
        assert completed.returncode == 0, completed.stderr
        results.append(read_result(out))
    assert results[0] == results[1], "1 and 2 threads differ"
    assert results[0] == results[2], "1 and 4 threads differ"


def case_predict_reproduces_training_labels(tmp):
    data = os.path.join(tmp, "customers.h5")
    run_kseg("generate", "customers", "--n", 30000, "--seed", 2, "-o", data)
    model = os.path.join(tmp, "model.h5")
    run_kseg("cluster", data, "-k", 5, "-o", model, "--quiet")
    labels = os.path.join(tmp, "labels.h5")
    run_kseg("predict", "--model", model, data, "-o", labels, "--quiet")
    with h5py.File(model, "r") as m, h5py.File(labels, "r") as p:
        assert np.array_equal(m["/labels/cluster"][:], p["/labels/cluster"][:])
        assert np.array_equal(m["/labels/id"][:], p["/labels/id"][:])
        inertia = m["/model/centroids"].attrs["inertia"]
        assert abs(p["/labels/distance"][:].sum() - inertia) <= 1e-6 * inertia


def case_json_log(tmp):
    data = os.path.join(tmp, "blobs.h5")
    run_kseg("generate", "blobs", "--n", 5000, "--d", 3, "--k", 4, "-o", data)
    out, log = os.path.join(tmp, "out.h5"), os.path.join(tmp, "log.jsonl")
    run_kseg("cluster", data, "-k", 4, "--init", "random", "--n-init", 2, "-o", out,
             "--log-json", log, "--quiet")
    events = [json.loads(line) for line in open(log)]
    kinds = [e["event"] for e in events]
    assert kinds.count("run") == 2 and kinds[-1] == "done", kinds
    for e in events:
        if e["event"] == "iteration":
            assert set(e) >= {"run", "iteration", "objective", "center_shift", "changed_labels",
                              "empty_repairs", "seconds"}, e
    with h5py.File(out, "r") as f:
        n_iter = int(f["/model/centroids"].attrs["n_iter"])
        assert len(f["/model/iterations/objective"]) == n_iter
        assert events[-1]["n_iter"] == n_iter


def case_columns_and_column_groups(tmp):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    x[:1500] += 6
    wide = os.path.join(tmp, "wide.h5")
    with h5py.File(wide, "w") as f:
        f["/customers/features"] = x
        f["/customers/features"].attrs["columns"] = ["a", "b", "c", "d"]
        f["/customers/id"] = np.arange(3000, dtype=np.int64) + 1000
    grouped = os.path.join(tmp, "grouped.h5")
    with h5py.File(grouped, "w") as f:
        for j, name in enumerate("abcd"):
            f[f"/table/{name}"] = x[:, j]
        f["/table/id"] = np.arange(3000, dtype=np.int64) + 1000
    out_wide, out_grouped = os.path.join(tmp, "w.h5"), os.path.join(tmp, "g.h5")
    run_kseg("cluster", wide, "-k", 2, "--columns", "c,a", "-o", out_wide, "--quiet")
    run_kseg("cluster", f"{grouped}:/table", "-k", 2, "--columns", "c,a", "-o", out_grouped,
             "--quiet")
    assert read_result(out_wide) == read_result(out_grouped)
    with h5py.File(out_wide, "r") as f:
        assert list(f["/model/centroids"].attrs["columns"]) == ["c", "a"]
        assert np.array_equal(f["/labels/id"][:], np.arange(3000) + 1000)


def case_success_replaces_existing_output(tmp):
    data = os.path.join(tmp, "blobs.h5")
    run_kseg("generate", "blobs", "--n", 2000, "--d", 2, "--k", 3, "-o", data)
    out = os.path.join(tmp, "out.h5")
    with open(out, "wb") as f:
        f.write(b"old")
    run_kseg("cluster", data, "-k", 3, "-o", out, "--quiet")
    with h5py.File(out, "r") as f:
        assert f["/labels/cluster"].shape == (2000,)
    assert sorted(os.listdir(tmp)) == ["blobs.h5", "out.h5"], os.listdir(tmp)


def case_hamerly_writes_the_same_result_as_lloyd(tmp):
    data = os.path.join(tmp, "customers.h5")
    run_kseg("generate", "customers", "--n", 30000, "--seed", 8, "-o", data)
    lloyd, hamerly = os.path.join(tmp, "lloyd.h5"), os.path.join(tmp, "hamerly.h5")
    run_kseg("cluster", data, "-k", 6, "-o", lloyd, "--quiet")
    run_kseg("cluster", data, "-k", 6, "-o", hamerly, "--algorithm", "hamerly", "--quiet")
    assert read_result(lloyd) == read_result(hamerly)
    with h5py.File(lloyd, "r") as a, h5py.File(hamerly, "r") as b:
        assert a["/model/centroids"].attrs["algorithm"] == "lloyd"
        assert b["/model/centroids"].attrs["algorithm"] == "hamerly"
        assert json.loads(b["/model/centroids"].attrs["options"])["algorithm"] == "hamerly"
        assert np.array_equal(a["/model/iterations/objective"][:],
                              b["/model/iterations/objective"][:])
        computed = a["/model/iterations/distances_computed"][:]
        assert np.array_equal(computed, b["/model/iterations/distances_computed"][:] +
                              b["/model/iterations/distances_skipped"][:])
        assert b["/model/iterations/distances_skipped"][:].sum() > 0
    bad = subprocess.run([KSEG, "cluster", data, "-k", "6", "-o", os.path.join(tmp, "x.h5"),
                          "--algorithm", "kmedoids"], capture_output=True, text=True)
    assert bad.returncode == 2 and "expected lloyd, hamerly, elkan, yinyang, auto or minibatch" in \
        bad.stderr, bad.stderr


def case_bound_algorithm_with_an_expanded_kernel_warns_and_runs_lloyd(tmp):
    data = os.path.join(tmp, "customers.h5")
    run_kseg("generate", "customers", "--n", 5000, "--seed", 4, "-o", data)
    out, lloyd = os.path.join(tmp, "elkan.h5"), os.path.join(tmp, "lloyd.h5")
    result = run_kseg("cluster", data, "-k", 8, "-o", out, "--algorithm", "elkan",
                      "--kernel", "gemm")
    assert "kseg cluster: warning: --algorithm elkan needs a direct-difference kernel; kernel " \
        "'gemm' is expanded-form, so lloyd runs instead" in result.stderr, result.stderr
    # No bounds run, so no line about their memory.
    assert "extra memory for its bounds" not in result.stdout, result.stdout
    run_kseg("cluster", data, "-k", 8, "-o", lloyd, "--kernel", "gemm", "--quiet")
    assert read_result(lloyd) == read_result(out)
    with h5py.File(out, "r") as f:
        assert f["/model/centroids"].attrs["algorithm"] == "lloyd"


def case_elkan_and_yinyang_write_the_same_result_as_lloyd(tmp):
    data = os.path.join(tmp, "customers.h5")
    run_kseg("generate", "customers", "--n", 30000, "--seed", 9, "-o", data)
    lloyd = os.path.join(tmp, "lloyd.h5")
    for algorithm in ["elkan", "yinyang"]:
        out = os.path.join(tmp, f"{algorithm}.h5")
        # Not quiet: the extra memory is stated before the fit, the distances after it.
        result = run_kseg("cluster", data, "-k", 24, "-o", out, "--algorithm", algorithm,
                          "--bounds-memory", "1G")
        lines = result.stdout.splitlines()
        assert lines[0].startswith(f"kseg cluster: algorithm {algorithm}, ") and \
            lines[0].endswith("of extra memory for its bounds"), lines[0]
        assert any(line.startswith(f"  algorithm {algorithm} (kernel ") for line in lines), lines
        # Without --kernel a bound algorithm takes the fastest direct-difference kernel; Lloyd
        # with that kernel must give bitwise the same result.
        with h5py.File(out, "r") as f:
            kernel = f["/model/centroids"].attrs["kernel"]
        run_kseg("cluster", data, "-k", 24, "-o", lloyd, "--quiet", "--kernel", kernel)
        assert read_result(lloyd) == read_result(out)
        with h5py.File(lloyd, "r") as a, h5py.File(out, "r") as b:
            attrs = b["/model/centroids"].attrs
            assert attrs["algorithm"] == algorithm
            assert a["/model/centroids"].attrs["bounds_memory"] == 0
            assert attrs["bounds_memory"] > 30000 * (4 if algorithm == "yinyang" else 24 * 4)
            for name in ["objective", "center_shift", "changed_labels"]:
                assert np.array_equal(a["/model/iterations/" + name][:],
                                      b["/model/iterations/" + name][:]), name
            computed = a["/model/iterations/distances_computed"][:]
            assert np.array_equal(computed, b["/model/iterations/distances_computed"][:] +
                                  b["/model/iterations/distances_skipped"][:])
            assert b["/model/iterations/distances_skipped"][:].sum() > 0
    # auto under a tiny limit falls back to a cheaper algorithm instead of failing.
    out = os.path.join(tmp, "auto.h5")
    run_kseg("cluster", data, "-k", 24, "-o", out, "--algorithm", "auto", "--bounds-memory",
             "1", "--quiet")
    run_kseg("cluster", data, "-k", 24, "-o", lloyd, "--quiet")
    assert read_result(lloyd) == read_result(out)
    with h5py.File(out, "r") as f:
        assert f["/model/centroids"].attrs["algorithm"] == "lloyd"


def main():
    run_cases(globals())


if __name__ == "__main__":
    main()
