"""Oracle: on data generated here, with the same initial centers, kseg's labels must equal
scikit-learn's KMeans(algorithm="lloyd", n_init=1) labels, and the inertias agree to 1e-5."""
import os
import sys

import h5py
import numpy as np
from sklearn.cluster import KMeans

sys.path.insert(0, os.path.dirname(__file__))
from common import Cases, run_kseg, scratch_dir  # noqa: E402


def make_data(n, d, k, dtype, seed, spread=6.0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-spread, spread, size=(k, d))
    labels = rng.integers(0, k, size=n)
    x = centers[labels] + rng.normal(size=(n, d))
    return x.astype(dtype)


def compare(n, d, k, dtype, seed, weighted=False, kernel=None, max_iter=300, tol=1e-4):
    x = make_data(n, d, k, dtype, seed)
    rng = np.random.default_rng(seed + 1)
    init = x[rng.choice(n, size=k, replace=False)].astype(np.float64)
    weights = rng.uniform(0.5, 2.0, size=n) if weighted else None
    with scratch_dir() as tmp:
        data_path = os.path.join(tmp, "data.h5")
        with h5py.File(data_path, "w") as f:
            f["/customers/features"] = x
            f["/init/centers"] = init
            if weighted:
                f["/weights"] = weights
        args = ["cluster", data_path, "-k", k, "--init", f"{data_path}:/init/centers",
                "--max-iter", max_iter, "--tol", tol, "-o", os.path.join(tmp, "out.h5"), "--quiet"]
        if weighted:
            args += ["--weights", f"{data_path}:/weights"]
        if kernel:
            args += ["--kernel", kernel]
        run_kseg(*args)
        with h5py.File(os.path.join(tmp, "out.h5"), "r") as f:
            labels = f["/labels/cluster"][:]
            centroids = f["/model/centroids"][:]
            inertia = f["/model/centroids"].attrs["inertia"]
            n_iter = int(f["/model/centroids"].attrs["n_iter"])

    model = KMeans(n_clusters=k, init=init.astype(dtype), n_init=1, algorithm="lloyd",
                   max_iter=max_iter, tol=tol).fit(x, sample_weight=weights)
    differ = np.flatnonzero(labels != model.labels_)
    if len(differ):
        # float64 must agree exactly. In float32, scikit-learn accumulates the centers in float32
        # (kseg in double) and computes expanded-form distances, so the two tools' centers differ
        # by rounding. A row can then legitimately change sides only if it is a tie at that
        # precision: moving every center by at most delta changes each distance by at most
        # delta, so the row's two candidate distances must be within 2 * delta. Such rows must
        # also be rare.
        assert dtype == np.float32, f"{len(differ)} of {n} labels differ from scikit-learn"
        assert len(differ) <= max(1, n // 10000), f"{len(differ)} of {n} labels differ"
        sk_centers = model.cluster_centers_.astype(np.float64)
        delta = np.max(np.linalg.norm(centroids - sk_centers, axis=1))
        rows = x[differ].astype(np.float64)
        ours_d = np.linalg.norm(rows - centroids[labels[differ]], axis=1)
        theirs_d = np.linalg.norm(rows - centroids[model.labels_[differ]], axis=1)
        gap = np.abs(ours_d - theirs_d)
        assert np.all(gap <= 2 * delta), \
            f"labels differ on rows that are not ties: gaps {gap}, center disagreement {delta}"
    # Re-evaluate both inertias in float64 so precision of either tool's sum does not matter.
    w = np.ones(n) if weights is None else weights
    x64 = x.astype(np.float64)
    ours = float(np.sum(w * np.sum((x64 - centroids[labels]) ** 2, axis=1)))
    theirs = float(np.sum(w * np.sum((x64 - model.cluster_centers_.astype(np.float64)[model.labels_]) ** 2, axis=1)))
    assert abs(ours - theirs) <= 1e-5 * theirs, f"inertia {ours} vs scikit-learn {theirs}"
    assert abs(inertia - model.inertia_) <= 1e-5 * model.inertia_, \
        f"reported inertia {inertia} vs scikit-learn {model.inertia_}"
    assert n_iter == model.n_iter_, f"{n_iter} iterations vs scikit-learn {model.n_iter_}"
    assert np.allclose(centroids, model.cluster_centers_, rtol=1e-4, atol=1e-4 * np.abs(x64).max())


def main():
    cases = Cases()
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        cases.run(f"{name} n=20000 d=2 k=5", compare, 20000, 2, 5, dtype, 1)
        cases.run(f"{name} n=30000 d=8 k=8", compare, 30000, 8, 8, dtype, 2)
        cases.run(f"{name} n=20000 d=16 k=32", compare, 20000, 16, 32, dtype, 3)
        cases.run(f"{name} weighted n=20000 d=5 k=6", compare, 20000, 5, 6, dtype, 4, True)
        cases.run(f"{name} n=10000 d=64 k=40 (gemm-sized)", compare, 10000, 64, 40, dtype, 5)
        cases.run(f"{name} n=15000 d=3 k=4 reference kernel", compare, 15000, 3, 4, dtype, 6,
                  False, "reference")
    cases.finish()


if __name__ == "__main__":
    main()
