"""`mpirun -n R kseg cluster` (the MPI build) against the serial build's `kseg cluster` on the same
file: labels, ids, centroids, inertia and the iteration table (all but its seconds) bitwise equal
for R = 1 to 4 ranks x 1 and 2 threads, every algorithm and every init; ranks without rows
(n < 8192 R) and n < R; a bad value on one rank stops every rank; ranks started with different
options are refused, naming the rank and the option.

Environment: KSEG (the MPI build's kseg), KSEG_SERIAL (the serial build's kseg), MPIEXEC
(default mpirun)."""
import os
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import KSEG, run_cases  # noqa: E402

SERIAL = os.environ.get("KSEG_SERIAL", "")
MPIEXEC = os.environ.get("MPIEXEC", "mpirun")
# Containers run as root and have more ranks than cores; shared memory and self only (no
# network). A hung run fails by the timeout instead of blocking the suite.
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl="self,vader",
               OMPI_MCA_btl_vader_single_copy_mechanism="none")
TIMEOUT = 120


def mpirun(ranks, args, threads=1, **extra_env):
    env = dict(MPI_ENV, OMP_NUM_THREADS=str(threads), **extra_env)
    return subprocess.run([MPIEXEC, "-n", str(ranks), KSEG, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def serial(args, threads=1):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    completed = subprocess.run([SERIAL, *map(str, args)], env=env, capture_output=True, text=True,
                               timeout=TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    return completed


def contents(path):
    """Everything of a result file that must be bitwise the serial run's."""
    found = {}
    with h5py.File(path, "r") as f:
        for name in ("/model/centroids", "/model/feature_mean", "/labels/cluster", "/labels/id"):
            if name in f:
                found[name] = (f[name].dtype.str, f[name].shape, f[name][()].tobytes())
        for name in f["/model/iterations"]:
            if name != "seconds":
                data = f["/model/iterations/" + name]
                found["iterations/" + name] = data[()].tobytes()
        for name, value in f["/model/centroids"].attrs.items():
            value = np.asarray(value)
            found["attribute " + name] = (tuple(value.ravel().tolist()) if value.dtype == object
                                          else value.tobytes())
    return found


def compare(tmp, data, args, cases, label):
    """Runs the serial build once and the MPI build for each (ranks, threads) case."""
    reference = os.path.join(tmp, "serial.h5")
    serial(["cluster", data, "-o", reference, "--quiet", *args])
    expected = contents(reference)
    for ranks, threads in cases:
        out = os.path.join(tmp, f"mpi{ranks}x{threads}.h5")
        completed = mpirun(ranks, ["cluster", data, "-o", out, "--quiet", *args], threads)
        assert completed.returncode == 0, f"{label} R={ranks}: {completed.stderr}"
        got = contents(out)
        assert got.keys() == expected.keys(), f"{label} R={ranks}: {got.keys()}"
        for key in expected:
            assert got[key] == expected[key], f"{label} R={ranks} x {threads} threads: {key} differs"
        leftovers = [name for name in os.listdir(tmp) if ".tmp" in name]
        assert not leftovers, f"temporary files left: {leftovers}"


def generate(tmp, n, d=5, k=6, seed=1):
    data = os.path.join(tmp, f"blobs{n}.h5")
    serial(["generate", "blobs", "--n", n, "--d", d, "--k", k, "--seed", seed, "-o", data,
            "--quiet"])
    return data


def case_ranks_and_threads_equal_the_serial_build(tmp):
    # 5 blocks of 8192 rows: 3 ranks split them 1-2-2, 4 ranks 1-1-1-2 (the last one partial).
    data = generate(tmp, 38000)
    weights = os.path.join(tmp, "weights.h5")
    with h5py.File(weights, "w") as f:
        f["w"] = np.random.default_rng(5).uniform(0.5, 2.0, 38000)
    cases = [(r, t) for r in (1, 2, 3, 4) for t in (1, 2)]
    compare(tmp, data, ["-k", 6, "--seed", 3], cases, "lloyd")
    compare(tmp, data, ["-k", 6, "--seed", 3, "--weights", weights + ":/w"], [(3, 1), (4, 2)],
            "weights")


def case_every_algorithm(tmp):
    data = generate(tmp, 30000, d=4, k=8, seed=2)
    for algorithm in ("lloyd", "hamerly", "elkan", "yinyang", "minibatch", "auto"):
        args = ["-k", 8, "--seed", 1, "--algorithm", algorithm]
        if algorithm == "minibatch":
            args += ["--batch-size", 2048, "--max-iter", 5]
        compare(tmp, data, args, [(2, 2), (3, 1)], algorithm)


def case_every_init(tmp):
    data = generate(tmp, 30000, d=3, k=5, seed=4)
    for init in ("k-means++", "k-means||", "random"):
        compare(tmp, data, ["-k", 5, "--seed", 9, "--init", init], [(2, 1), (4, 2)], init)


def case_ranks_without_rows_and_fewer_rows_than_ranks(tmp):
    # 10000 rows are 2 blocks: of 3 ranks one has none; 5000 rows on 4 ranks leave 3 empty.
    data = generate(tmp, 10000)
    weights = os.path.join(tmp, "weights.h5")
    with h5py.File(weights, "w") as f:
        f["w"] = np.linspace(0.1, 3.0, 10000)
    compare(tmp, data, ["-k", 4, "--seed", 2, "--weights", weights + ":/w", "--init", "k-means||"],
            [(3, 1)], "10000 rows")
    compare(tmp, generate(tmp, 5000), ["-k", 4, "--seed", 2, "--algorithm", "hamerly"], [(4, 1)],
            "5000 rows")
    compare(tmp, generate(tmp, 3, k=2), ["-k", 2, "--seed", 2], [(4, 1)], "3 rows")


def case_a_failure_on_one_rank_stops_every_rank(tmp):
    data = generate(tmp, 20000)
    weights = os.path.join(tmp, "weights.h5")
    values = np.ones(20000)
    values[19000] = -1.0  # on the last of 2 ranks only
    with h5py.File(weights, "w") as f:
        f["w"] = values
    out = os.path.join(tmp, "out.h5")
    completed = mpirun(2, ["cluster", data, "-k", 4, "-o", out, "--weights", weights + ":/w"])
    assert completed.returncode == 1, completed
    assert "rank 1: sample weight of row 19000 is -1" in completed.stderr, completed.stderr
    assert not os.path.exists(out)
    leftovers = [name for name in os.listdir(tmp) if ".tmp" in name]
    assert not leftovers, f"temporary files left: {leftovers}"


def case_a_nan_on_one_rank_with_ids_stops_every_rank(tmp):
    """The ids are read collectively after the rows: the rank that finds the NaN must still take
    part in that read (before the fix, the other rank waited in it forever)."""
    data = os.path.join(tmp, "nan.h5")
    values = np.random.default_rng(0).random((40000, 4), dtype=np.float32)
    values[30000, 2] = np.nan  # rank 1 of 2
    with h5py.File(data, "w") as f:
        f["/customers/features"] = values
        f["/customers/id"] = np.arange(40000, dtype=np.int64)
    out = os.path.join(tmp, "out.h5")
    completed = mpirun(2, ["cluster", data, "-k", 4, "-o", out])
    assert completed.returncode == 1, completed
    assert "rank 1:" in completed.stderr and "row 30000" in completed.stderr, completed.stderr
    assert not os.path.exists(out)


def case_a_file_system_without_mpi_io_is_a_clear_error(tmp):
    """With every MPI-IO component of OpenMPI excluded, MPI_File_open fails as it does on a file
    system without MPI-IO support: every rank stops with one line saying so, nothing is left."""
    data = generate(tmp, 20000)
    out = os.path.join(tmp, "out.h5")
    completed = mpirun(2, ["cluster", data, "-k", 4, "-o", out], OMPI_MCA_io="^ompio,romio321")
    assert completed.returncode == 1, completed
    assert "with MPI-IO (does its file system support MPI-IO?)" in completed.stderr, completed.stderr
    assert not os.path.exists(out)
    leftovers = [name for name in os.listdir(tmp) if ".tmp" in name]
    assert not leftovers, f"temporary files left: {leftovers}"


def case_ranks_with_different_options_are_refused(tmp):
    data = generate(tmp, 10000)
    out = os.path.join(tmp, "out.h5")
    common = ["cluster", data, "-o", out, "--quiet"]
    env = dict(MPI_ENV, OMP_NUM_THREADS="1")
    completed = subprocess.run(
        [MPIEXEC, "-n", "1", KSEG, *common, "--clusters", "4", ":", "-n", "1", KSEG, *common,
         "--clusters", "5"], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert completed.returncode == 2, completed
    assert "rank 1 was started with '--clusters 5', rank 0 with '--clusters 4'" in \
        completed.stderr, completed.stderr
    assert not os.path.exists(out)


if __name__ == "__main__":
    if not SERIAL or not os.access(SERIAL, os.X_OK):
        sys.exit(f"KSEG_SERIAL must name the serial build's kseg (got '{SERIAL}'): build the "
                 "release preset first")
    run_cases(globals())
