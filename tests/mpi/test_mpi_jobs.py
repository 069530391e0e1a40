"""The MPI build's job-level features under real mpirun, each against the serial build bitwise:
a checkpoint requested with SIGUSR1 sent to mpirun (exit 85, no output) and resumed on another
rank count and by the serial build; `kseg cluster --memory-limit` with mapped and staged rows on
3 ranks, one of them without rows; `kseg rfm` on 1 to 4 ranks (every /rfm dataset and attribute
and the CSV), also with fewer rows than ranks.

Environment: KSEG (the MPI build's kseg), KSEG_SERIAL (the serial build's kseg), MPIEXEC
(default mpirun)."""
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import KSEG, run_cases  # noqa: E402

SERIAL = os.environ.get("KSEG_SERIAL", "")
MPIEXEC = os.environ.get("MPIEXEC", "mpirun")
# As in test_mpi_cluster.py: containers run as root with more ranks than cores; shared memory and
# self only. A hung run fails by the timeout instead of blocking the suite.
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl="self,vader",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", OMP_NUM_THREADS="1")
TIMEOUT = 120
CHECKPOINT_EXIT = 85


def mpirun(ranks, args, check=True):
    completed = subprocess.run([MPIEXEC, "-n", str(ranks), KSEG, *map(str, args)], env=MPI_ENV,
                               capture_output=True, text=True, timeout=TIMEOUT)
    assert not check or completed.returncode == 0, \
        f"mpirun -n {ranks} kseg {' '.join(map(str, args))}: {completed.stderr}"
    return completed


def serial(args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run([SERIAL, *map(str, args)], env=env, capture_output=True, text=True,
                               timeout=TIMEOUT)
    assert completed.returncode == 0, f"kseg {' '.join(map(str, args))}: {completed.stderr}"
    return completed


def contents(path, group="/", skip=("seconds",)):
    """Every dataset's dtype, shape and bytes and every attribute under group, except datasets
    whose names end with one of skip (wall times; distance counts of resumed bound runs)."""
    found = {}

    def value_of(value):
        value = np.asarray(value)
        if value.dtype == object:
            return tuple(x.decode() if isinstance(x, bytes) else x for x in value.ravel())
        return (value.dtype.str, value.shape, value.tobytes())

    def visit(name, item):
        for key, value in item.attrs.items():
            found[f"{name}@{key}"] = value_of(value)
        if isinstance(item, h5py.Dataset) and not name.endswith(skip):
            found[name] = value_of(item[()])

    with h5py.File(path, "r") as f:
        for key, value in f[group].attrs.items():
            found[f"{group}@{key}"] = value_of(value)
        f[group].visititems(visit)
    return found


def assert_same(got, expected, label):
    assert got.keys() == expected.keys(), \
        f"{label}: items {sorted(got.keys() ^ expected.keys())} are in one file only"
    differing = [key for key in expected if got[key] != expected[key]]
    assert not differing, f"{label}: {differing} differ from the serial build's"


def no_temporaries(tmp):
    leftovers = [name for name in os.listdir(tmp) if ".tmp" in name or name.startswith(".kseg")]
    assert not leftovers, f"temporary files left: {leftovers}"


# --- Checkpoint and resume -----------------------------------------------------------------------

# With --tol 0 the fit runs about 70 iterations of 600000 rows: a signal sent after the first
# logged iteration lands well inside it, on any rank count.
FIT = ["-k", 32, "--tol", 0, "--max-iter", 300, "--seed", 3, "--threads", 1, "--quiet"]


def interrupt_under_mpirun(ranks, arguments, log):
    """Starts mpirun -n ranks kseg cluster, sends SIGUSR1 to mpirun (not to the ranks: OpenMPI's
    mpirun forwards SIGUSR1 and SIGUSR2 to every rank) after rank 0 logged its first iteration,
    and waits. Returns the exit status and stderr."""
    process = subprocess.Popen([MPIEXEC, "-n", str(ranks), KSEG, "cluster", *map(str, arguments),
                                "--log-json", log], env=MPI_ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(log) and '"event":"iteration"' in open(log).read():
            break
        time.sleep(0.002)
    assert process.poll() is None, "the fit ended before the signal: make the data larger"
    process.send_signal(signal.SIGUSR1)
    try:
        _, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode, stderr


def checkpoint_and_resume(tmp, data, extra, label):
    skip = ("seconds",)
    if "--algorithm" in extra:
        # The bound algorithms rebuild their bounds on resume: their distance counts (work done,
        # not results) differ; nothing else may.
        skip = ("seconds", "distances_computed", "distances_skipped")
    reference = os.path.join(tmp, f"reference-{label}.h5")
    serial(["cluster", data, *FIT, *extra, "-o", reference])
    expected = contents(reference, skip=skip)
    out = os.path.join(tmp, f"out-{label}.h5")
    checkpoint = os.path.join(tmp, f"state-{label}.h5")
    code, stderr = interrupt_under_mpirun(
        3, [data, *FIT, *extra, "-o", out, "--checkpoint", checkpoint],
        os.path.join(tmp, f"log-{label}.json"))
    assert code == CHECKPOINT_EXIT, f"{label}: mpirun exit {code}: {stderr}"
    assert f"checkpoint written to {checkpoint} (resume with --resume {checkpoint})" in stderr, \
        stderr
    assert stderr.count("interrupted at iteration") == 1, f"not rank 0 alone: {stderr}"
    assert os.path.exists(checkpoint), "no checkpoint"
    assert not os.path.exists(out), "an interrupted run wrote its output"
    no_temporaries(tmp)
    # Resumed on another rank count, and by the serial build: the checkpoint does not depend on
    # either.
    mpirun(2, ["cluster", data, *FIT, *extra, "-o", out, "--resume", checkpoint])
    assert_same(contents(out, skip=skip), expected, f"{label}: resumed on 2 ranks")
    resumed = os.path.join(tmp, f"serial-{label}.h5")
    serial(["cluster", data, *FIT, *extra, "-o", resumed, "--resume", checkpoint])
    assert_same(contents(resumed, skip=skip), expected, f"{label}: resumed by the serial build")
    no_temporaries(tmp)


def case_sigusr1_to_mpirun_checkpoints_and_resume_is_bitwise(tmp):
    data = os.path.join(tmp, "blobs.h5")
    serial(["generate", "blobs", "--n", 600000, "--d", 8, "--k", 32, "--sigma", 4, "--seed", 1,
            "-o", data, "--quiet"])
    checkpoint_and_resume(tmp, data, [], "lloyd")
    checkpoint_and_resume(tmp, data, ["--algorithm", "hamerly"], "hamerly")


# --- --memory-limit ------------------------------------------------------------------------------

def make_inputs(tmp, rows, cols=6):
    """The same rows (with ids) as a contiguous dataset and as gzip-compressed chunks."""
    rng = np.random.default_rng(rows)
    centers = rng.normal(scale=4.0, size=(8, cols))
    values = (centers[rng.integers(0, 8, rows)] + rng.normal(size=(rows, cols))).astype(np.float32)
    paths = {}
    for name, options in (("contiguous", {}),
                          ("gzip", {"chunks": (3000, cols), "compression": "gzip"})):
        path = os.path.join(tmp, f"{name}{rows}.h5")
        with h5py.File(path, "w") as f:
            dataset = f.create_dataset("/customers/features", data=values, **options)
            dataset.attrs["columns"] = [f"f{j}" for j in range(cols)]
            f["/customers/id"] = np.arange(rows, dtype=np.int64) * 7 + 1
        paths[name] = path
    return paths


def case_memory_limit_mapped_and_staged_on_3_ranks(tmp):
    # 40000 rows are 5 blocks of 8192 (split 1-2-2); 10000 rows are 2 blocks, so one rank of 3
    # has no rows. Each limit is below the largest share's rows (24 bytes a row) plus its
    # workspace and above that workspace (about 22 bytes a row with Hamerly's bounds).
    for rows, limit in ((40000, "450K"), (10000, "230K")):
        paths = make_inputs(tmp, rows)
        for algorithm in ("lloyd", "hamerly"):
            fit = ["-k", 8, "--seed", 5, "--algorithm", algorithm]
            reference = os.path.join(tmp, "memory.h5")
            serial(["cluster", paths["contiguous"], *fit, "-o", reference, "--quiet"])
            expected = contents(reference)
            for kind, mode in (("contiguous", "mapped"), ("gzip", "staged")):
                label = f"{rows} rows, {algorithm}, {kind}"
                out = os.path.join(tmp, f"{kind}.h5")
                log = os.path.join(tmp, f"{kind}.jsonl")
                completed = mpirun(3, ["cluster", paths[kind], *fit, "-o", out, "--log-json", log,
                                       "--memory-limit", limit, "--scratch-dir", tmp])
                done = [json.loads(line) for line in open(log)][-1]
                assert done["rows_mode"] == mode, (label, done["rows_mode"])
                assert "exceed --memory-limit" in completed.stdout, completed.stdout
                assert_same(contents(out), expected, label)
                os.remove(log)
                no_temporaries(tmp)


# --- kseg rfm ------------------------------------------------------------------------------------

RFM_OPTIONS = ([], ["--frequency", "days", "--returns", "net", "--dedupe", "--ties", "value"])


def case_rfm_on_1_to_4_ranks_equals_the_serial_build(tmp):
    log = os.path.join(tmp, "tx.h5")
    serial(["generate", "transactions", "--transactions", 50000, "--customers", 4000, "--seed", 3,
            "--return-rate", 0.05, "-o", log, "--quiet"])
    for options in RFM_OPTIONS:
        label = " ".join(options) or "defaults"
        reference, reference_csv = os.path.join(tmp, "serial.h5"), os.path.join(tmp, "serial.csv")
        serial(["rfm", log, "-o", reference, "--csv", reference_csv, "--quiet", *options])
        expected = contents(reference, "/rfm")
        with open(reference_csv, "rb") as f:
            expected_csv = f.read()
        for ranks in (1, 2, 3, 4):
            out, csv = os.path.join(tmp, f"mpi{ranks}.h5"), os.path.join(tmp, f"mpi{ranks}.csv")
            mpirun(ranks, ["rfm", log, "-o", out, "--csv", csv, "--quiet", *options])
            assert_same(contents(out, "/rfm"), expected, f"rfm {label} on {ranks} ranks")
            with open(csv, "rb") as f:
                assert f.read() == expected_csv, f"rfm {label} on {ranks} ranks: the CSV differs"
            no_temporaries(tmp)


def case_rfm_with_fewer_rows_than_ranks(tmp):
    log = os.path.join(tmp, "tx.h5")
    serial(["generate", "transactions", "--transactions", 3, "--customers", 10, "--seed", 2,
            "-o", log, "--quiet"])
    reference, reference_csv = os.path.join(tmp, "serial.h5"), os.path.join(tmp, "serial.csv")
    serial(["rfm", log, "-o", reference, "--csv", reference_csv, "--quiet"])
    out, csv = os.path.join(tmp, "mpi.h5"), os.path.join(tmp, "mpi.csv")
    mpirun(4, ["rfm", log, "-o", out, "--csv", csv, "--quiet"])
    assert_same(contents(out, "/rfm"), contents(reference, "/rfm"), "rfm of 3 rows on 4 ranks")
    with open(csv, "rb") as f, open(reference_csv, "rb") as g:
        assert f.read() == g.read(), "rfm of 3 rows on 4 ranks: the CSV differs"
    no_temporaries(tmp)


if __name__ == "__main__":
    if not SERIAL or not os.access(SERIAL, os.X_OK):
        sys.exit(f"KSEG_SERIAL must name the serial build's kseg (got '{SERIAL}'): build the "
                 "release preset first")
    run_cases(globals())
