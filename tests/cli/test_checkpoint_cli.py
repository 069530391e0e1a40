"""`kseg cluster` checkpoints: SIGUSR1 or SIGTERM during the fit writes a checkpoint and exits 85
with no output; `--resume` finishes with output datasets bitwise equal to an uninterrupted run's
(timings aside); a checkpoint from other data or options, or a file that is no checkpoint, is
refused with exit 1 and nothing written. The test sends the signals itself."""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import KSEG, run_kseg, run_cases  # noqa: E402

# Enough iterations (tens, with --tol 0) that a signal sent after the first logged iteration
# lands well inside the fit.
FIT = ["-k", "32", "--tol", "0", "--max-iter", "300", "--seed", "3", "--threads", "1", "--quiet"]


def make_data(tmp, seed=1):
    data = os.path.join(tmp, f"blobs{seed}.h5")
    run_kseg("generate", "blobs", "--n", 600000, "--d", 8, "--k", 32, "--sigma", 4, "--seed", seed,
             "-o", data)
    return data


def datasets(path, skip=("seconds",)):
    """Every dataset's bytes and the model attributes, except wall times (and skip)."""
    found = {}
    with h5py.File(path, "r") as f:
        def visit(name, item):
            if isinstance(item, h5py.Dataset) and not name.endswith(skip):
                found[name] = np.asarray(item[()]).tobytes()
        f.visititems(visit)
        for key, value in f["/model/centroids"].attrs.items():
            found["attr:" + key] = str(value)
    return found


def interrupt(arguments, log, send):
    """Starts kseg cluster, sends `send` after the first iteration line of the log, waits."""
    process = subprocess.Popen([KSEG, "cluster", *map(str, arguments), "--log-json", log],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(log) and '"event":"iteration"' in open(log).read():
            break
        time.sleep(0.002)
    assert process.poll() is None, "the fit ended before the signal: make the data larger"
    process.send_signal(send)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def expect_checkpoint_and_resume(tmp, send, extra):
    data = make_data(tmp)
    reference = os.path.join(tmp, "reference.h5")
    run_kseg("cluster", data, *FIT, *extra, "-o", reference)
    out = os.path.join(tmp, "out.h5")
    code, stderr = interrupt([data, *FIT, *extra, "-o", out], os.path.join(tmp, "log.json"), send)
    checkpoint = os.path.join(tmp, "out.checkpoint.h5")
    assert code == 85, f"exit {code}: {stderr}"
    assert "interrupted at iteration" in stderr and f"--resume {checkpoint}" in stderr, stderr
    assert os.path.exists(checkpoint), "no checkpoint"
    assert not os.path.exists(out), "an interrupted run wrote its output"
    assert not [name for name in os.listdir(tmp) if ".tmp" in name], os.listdir(tmp)
    run_kseg("cluster", data, *FIT, *extra, "-o", out, "--resume", checkpoint)
    # The bound algorithms rebuild their bounds on resume: their distance counts (work done,
    # not results) differ; everything else must not.
    skip = ("seconds",) if "--algorithm" not in extra else ("seconds", "distances_computed",
                                                             "distances_skipped")
    resumed, expected = datasets(out, skip), datasets(reference, skip)
    assert resumed == expected, [key for key in expected if resumed.get(key) != expected[key]]
    assert os.path.exists(checkpoint), "the checkpoint is documented to stay"


def case_sigusr1_checkpoints_and_resume_is_bitwise(tmp):
    expect_checkpoint_and_resume(tmp, signal.SIGUSR1, [])


def case_sigterm_checkpoints_and_resume_is_bitwise_with_a_bound_algorithm(tmp):
    expect_checkpoint_and_resume(tmp, signal.SIGTERM, ["--algorithm", "hamerly", "--n-init", "2"])


def case_checkpoint_from_other_data_or_options_is_refused_by_name(tmp):
    data = make_data(tmp)
    out = os.path.join(tmp, "out.h5")
    checkpoint = os.path.join(tmp, "state.h5")
    code, stderr = interrupt([data, *FIT, "-o", out, "--checkpoint", checkpoint],
                             os.path.join(tmp, "log.json"), signal.SIGUSR1)
    assert code == 85, stderr
    assert "checkpoint written to " + checkpoint in stderr, stderr
    changed = [a if a != "32" else "31" for a in FIT]
    result = run_kseg("cluster", data, *changed, "-o", out, "--resume", checkpoint, check=False)
    assert result.returncode == 1, result.stderr
    assert "the checkpoint was taken with k = 32; this run has k = 31" in result.stderr, \
        result.stderr
    other = make_data(tmp, seed=2)
    result = run_kseg("cluster", other, *FIT, "-o", out, "--resume", checkpoint, check=False)
    assert result.returncode == 1 and "taken on other data" in result.stderr, result.stderr
    seed = FIT[:FIT.index("--seed") + 1] + ["4"] + FIT[FIT.index("--seed") + 2:]
    result = run_kseg("cluster", data, *seed, "-o", out, "--resume", checkpoint, check=False)
    assert result.returncode == 1 and "seed = 3; this run has seed = 4" in result.stderr, \
        result.stderr
    assert not os.path.exists(out), "a refused resume wrote output"


def case_garbage_checkpoint_is_refused(tmp):
    data = os.path.join(tmp, "small.h5")
    run_kseg("generate", "blobs", "--n", 1000, "--d", 2, "--k", 3, "-o", data)
    out = os.path.join(tmp, "out.h5")
    garbage = os.path.join(tmp, "garbage.h5")
    with open(garbage, "w") as f:
        f.write("not a checkpoint\n")
    result = run_kseg("cluster", data, "-k", 3, "-o", out, "--resume", garbage, check=False)
    assert result.returncode == 1 and "not an HDF5 file" in result.stderr, result.stderr
    result = run_kseg("cluster", data, "-k", 3, "-o", out, "--resume", data, check=False)
    assert result.returncode == 1 and "not a kseg checkpoint" in result.stderr, result.stderr
    # A checkpoint with an item removed names it.
    state = os.path.join(tmp, "state.h5")
    with h5py.File(state, "w") as f:
        group = f.create_group("checkpoint")
        group.attrs["format"] = "kseg k-means checkpoint"
        group.attrs["format_version"] = 1
    result = run_kseg("cluster", data, "-k", 3, "-o", out, "--resume", state, check=False)
    assert result.returncode == 1 and "attribute n_rows of /checkpoint is missing" in \
        result.stderr, result.stderr
    result = run_kseg("cluster", data, "-k", 3, "-o", out, "--resume", os.path.join(tmp, "none"),
                      check=False)
    assert result.returncode == 1 and "no such file" in result.stderr, result.stderr
    result = run_kseg("cluster", data, "-k", 3, "-o", out, "--checkpoint", out, check=False)
    assert result.returncode == 2 and "--checkpoint" in result.stderr, result.stderr
    assert not os.path.exists(out)


run_cases(globals())
