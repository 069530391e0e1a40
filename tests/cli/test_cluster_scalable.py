"""`kseg cluster --init 'k-means||'` and `--algorithm minibatch` end to end: the alias, identical
output for any thread count, the JSON log's init_seconds, the options recorded in the model, the
refusal of bad values; and mini-batch against scikit-learn's MiniBatchKMeans from the same
initial centers (qualitatively: both approximate, neither far from full k-means)."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import KSEG, expect_failure, run_cases, run_kseg  # noqa: E402


def read_result(path):
    with h5py.File(path, "r") as f:
        return (f["/model/centroids"][:].tobytes(), f["/labels/cluster"][:].tobytes(),
                f["/model/centroids"].attrs["inertia"], int(f["/model/centroids"].attrs["n_iter"]))


def case_kmeans_parallel_alias_threads_and_log(tmp):
    data = os.path.join(tmp, "blobs.h5")
    run_kseg("generate", "blobs", "--n", 60000, "--d", 4, "--k", 7, "--seed", 3, "--sigma", 0.5,
             "-o", data)
    results = []
    for threads, name in (("1", "k-means||"), ("2", "kmeans-parallel"), ("3", "k-means||")):
        out = os.path.join(tmp, f"out{threads}.h5")
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        log = os.path.join(tmp, f"log{threads}.jsonl")
        completed = subprocess.run([KSEG, "cluster", data, "-k", "7", "--init", name, "--seed", "4",
                                    "--oversampling", "10", "--init-rounds", "3", "-o", out,
                                    "--log-json", log, "--quiet"],
                                   env=env, capture_output=True, text=True)
        assert completed.returncode == 0, completed.stderr
        results.append(read_result(out))
        done = [json.loads(line) for line in open(log)][-1]
        assert done["event"] == "done" and 0 <= done["init_seconds"] <= done["fit_seconds"], done
    assert results[0] == results[1] == results[2], "thread counts differ"
    with h5py.File(data, "r") as f:
        truth = f["/truth/segment"][:]
    with h5py.File(os.path.join(tmp, "out1.h5"), "r") as f:
        options = json.loads(f["/model/centroids"].attrs["options"])
        assert options["init"] == "k-means||" and options["init_rounds"] == 3, options
        assert options["oversampling"] == 10, options
        ari = adjusted_rand_score(truth, f["/labels/cluster"][:])
    assert ari >= 0.99, f"adjusted Rand index {ari:.4f}"


def case_minibatch_writes_its_model(tmp):
    data = os.path.join(tmp, "customers.h5")
    run_kseg("generate", "customers", "--n", 40000, "--seed", 6, "-o", data)
    outs = []
    for threads in ("1", "2"):
        out = os.path.join(tmp, f"mb{threads}.h5")
        run_kseg("cluster", data, "-k", 6, "-o", out, "--algorithm", "minibatch", "--batch-size",
                 "2048", "--max-no-improvement", "5", "--threads", threads, "--quiet")
        outs.append(read_result(out))
    assert outs[0] == outs[1], "1 and 2 threads differ"
    with h5py.File(os.path.join(tmp, "mb1.h5"), "r") as f:
        attrs = f["/model/centroids"].attrs
        assert attrs["algorithm"] == "minibatch"
        options = json.loads(attrs["options"])
        assert options["batch_size"] == 2048 and options["max_no_improvement"] == 5, options
        assert attrs["convergence"] in ("no improvement (mini-batch)", "max_iter reached")
        assert f["/model/iterations/objective"].shape[0] == int(attrs["n_iter"])
    summary = run_kseg("cluster", data, "-k", 6, "-o", os.path.join(tmp, "mb.h5"),
                       "--algorithm", "minibatch").stdout
    assert "algorithm minibatch" in summary and "initialization" in summary, summary


def case_bad_values_are_refused(tmp):
    data = os.path.join(tmp, "blobs.h5")
    run_kseg("generate", "blobs", "--n", 1000, "--d", 2, "--k", 3, "--seed", 1, "-o", data)
    out = os.path.join(tmp, "out.h5")
    base = ["cluster", data, "-k", "3", "-o", out]
    for option, value in (("--oversampling", "0"), ("--oversampling", "-2"),
                          ("--oversampling", "many"), ("--init-rounds", "0"),
                          ("--init-rounds", "1001"), ("--batch-size", "0"),
                          ("--batch-size", "1.5"), ("--max-no-improvement", "-1")):
        expect_failure(tmp, base + [option, value], [option, value], code=2, kept=["blobs.h5"])
    expect_failure(tmp, base + ["--init", "k-means|"], ["--init", "k-means||", "'k-means|'"],
                   code=2, kept=["blobs.h5"])
    expect_failure(tmp, base + ["--algorithm", "mini-batch"], ["--algorithm", "minibatch",
                                                                "'mini-batch'"],
                   code=2, kept=["blobs.h5"])
    help_text = run_kseg("cluster", "--help").stdout
    for word in ("k-means||", "kmeans-parallel", "--oversampling", "--init-rounds", "minibatch",
                 "APPROXIMATE", "--batch-size", "--max-no-improvement"):
        assert word in help_text, word


def case_minibatch_close_to_scikit_learn_and_to_lloyd(tmp):
    """From the same initial centers, kseg's and scikit-learn's mini-batch both land within a
    few percent of full k-means (Lloyd) and within a few percent of each other. Their batches
    are drawn by different generators, so the comparison is of quality, not of bits."""
    rng = np.random.default_rng(12)
    n, d, k = 100000, 6, 10
    centers = rng.uniform(-8, 8, size=(k, d))
    x = (centers[rng.integers(0, k, size=n)] + rng.normal(size=(n, d))).astype(np.float32)
    init = x[rng.choice(n, size=k, replace=False)].astype(np.float64)
    data = os.path.join(tmp, "data.h5")
    with h5py.File(data, "w") as f:
        f["/customers/features"] = x
        f["/init/centers"] = init
    inertias = {}
    for algorithm in ("lloyd", "minibatch"):
        out = os.path.join(tmp, f"{algorithm}.h5")
        run_kseg("cluster", data, "-k", k, "--init", f"{data}:/init/centers", "--algorithm",
                 algorithm, "-o", out, "--quiet")
        with h5py.File(out, "r") as f:
            inertias[algorithm] = float(f["/model/centroids"].attrs["inertia"])
    x64 = x.astype(np.float64)
    sk_inertias = []
    for seed in range(3):
        model = MiniBatchKMeans(n_clusters=k, init=init, n_init=1, batch_size=1024,
                                max_no_improvement=10, random_state=seed).fit(x)
        # The full-data inertia of its centers, in float64 like kseg's.
        distances = ((x64[:, None, :] - model.cluster_centers_[None, :, :]) ** 2).sum(axis=2)
        sk_inertias.append(float(distances.min(axis=1).sum()))
    sk = float(np.median(sk_inertias))
    lloyd, mine = inertias["lloyd"], inertias["minibatch"]
    assert lloyd <= mine * (1 + 1e-9), (lloyd, mine)
    assert mine <= 1.03 * lloyd, f"kseg mini-batch {mine:.6g} vs Lloyd {lloyd:.6g}"
    assert sk <= 1.03 * lloyd, f"scikit-learn mini-batch {sk:.6g} vs Lloyd {lloyd:.6g}"
    assert abs(mine - sk) <= 0.03 * lloyd, f"kseg {mine:.6g} vs scikit-learn {sk:.6g}"


def main():
    run_cases(globals())


if __name__ == "__main__":
    main()
