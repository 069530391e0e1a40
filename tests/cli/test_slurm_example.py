"""examples/slurm/kseg_cluster.sbatch end to end, with stand-ins for Slurm: `srun` runs the command
in place and `scontrol` records what it was asked. The first attempt gets SIGUSR1 (as
`--signal=USR1@300` sends it), must exit 85 and ask for a requeue with a checkpoint on disk; the
second attempt must find the checkpoint, resume, finish with the result of an uninterrupted run,
and remove the checkpoint. The test sends the signal itself."""
import os
import signal
import stat
import subprocess
import sys
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import KSEG, run_kseg, run_cases  # noqa: E402

SOURCE = os.environ.get("KSEG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(SOURCE, "examples", "slurm", "kseg_cluster.sbatch")
OPTIONS = "--tol 0 --max-iter 300 --seed 3 --quiet"


def shims(tmp):
    """srun runs its command (after its own options); scontrol appends its arguments to a file."""
    directory = os.path.join(tmp, "bin")
    os.mkdir(directory)
    with open(os.path.join(directory, "srun"), "w") as f:
        f.write('#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n')
    with open(os.path.join(directory, "scontrol"), "w") as f:
        f.write(f'#!/bin/bash\necho "$@" >> {tmp}/scontrol.calls\n')
    for name in ("srun", "scontrol"):
        path = os.path.join(directory, name)
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return directory


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def datasets(path):
    found = {}
    with h5py.File(path, "r") as f:
        def visit(name, item):
            if isinstance(item, h5py.Dataset) and not name.endswith("seconds"):
                found[name] = np.asarray(item[()]).tobytes()
        f.visititems(visit)
    return found


def case_usr1_requeues_and_the_next_attempt_resumes_bitwise(tmp):
    data = os.path.join(tmp, "customers.h5")
    run_kseg("generate", "blobs", "--n", 600000, "--d", 8, "--k", 32, "--sigma", 4, "--seed", 1,
             "-o", data)
    reference = os.path.join(tmp, "reference.h5")
    run_kseg("cluster", data, "--clusters", 32, "--output", reference, *OPTIONS.split())
    output = os.path.join(tmp, "model.h5")
    checkpoint = output + ".checkpoint.h5"
    log = os.path.join(tmp, "log.json")
    env = dict(os.environ, PATH=shims(tmp) + os.pathsep + os.environ["PATH"], KSEG=KSEG,
               KSEG_INPUT=data, KSEG_OUTPUT=output, KSEG_CLUSTERS="32",
               KSEG_EXTRA_OPTIONS=f"{OPTIONS} --log-json {log}", SLURM_JOB_ID="4242",
               SLURM_CPUS_PER_TASK="1")

    first = subprocess.Popen(["bash", SCRIPT], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if os.path.exists(log) and '"event":"iteration"' in open(log).read():
            break
        time.sleep(0.002)
    assert first.poll() is None, "the fit ended before the signal"
    tasks = children(first.pid)
    assert tasks, "no task started by the job script"
    for task in tasks:  # Slurm signals the tasks, not the batch shell
        os.kill(task, signal.SIGUSR1)
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 85, f"exit {first.returncode}: {stdout} {stderr}"
    assert os.path.exists(checkpoint) and not os.path.exists(output)
    with open(os.path.join(tmp, "scontrol.calls")) as f:
        assert f.read().split() == ["requeue", "4242"]

    second = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, f"exit {second.returncode}: {second.stdout} {second.stderr}"
    assert "resuming from" in second.stdout, second.stdout
    assert not os.path.exists(checkpoint), "the finished job leaves its checkpoint behind"
    assert datasets(output) == datasets(reference)


if __name__ == "__main__":
    run_cases(globals())
