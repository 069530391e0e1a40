#!/usr/bin/env python3
"""Strong scaling of `kseg cluster` under MPI on one machine (issue 6): the same data and initial
centers run as the serial build with 1 and 2 threads and as the MPI build with 1 rank x 1 thread,
1 rank x 2 threads and 2 ranks x 1 thread. Seconds per Lloyd iteration are (T(20) - T(1)) / 19 of
the fit time that `kseg cluster --log-json` reports, medians of the repeats; efficiency is the
speedup over 1 rank x 1 thread divided by the cores used. Prints a markdown table."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kmeans_fixed_work as fixed  # noqa: E402  (shared data writer and machine description)

REPO_ROOT = Path(__file__).resolve().parent.parent


def mpi_environment(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    return env


def fit_seconds(command, env, log_path):
    log_path.unlink(missing_ok=True)
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    return [e for e in events if e.get("event") == "done"][-1]["fit_seconds"]


def measure(setup, data_path, k, repeats, scratch):
    """Median seconds per iteration of one setup (name, launcher, binary, threads)."""
    name, launcher, kseg, threads = setup
    log_path = scratch / "log.jsonl"
    result_path = scratch / "result.h5"
    per_iteration = []
    for _ in range(repeats):
        times = {}
        for max_iter in (fixed.SHORT_MAX_ITER, fixed.LONG_MAX_ITER):
            result_path.unlink(missing_ok=True)
            command = launcher + [str(kseg), "cluster", f"{data_path}:{fixed.FEATURES_PATH}",
                                  "-k", str(k), "--init", f"{data_path}:{fixed.CENTERS_PATH}",
                                  "--tol", "0", "--max-iter", str(max_iter), "--threads",
                                  str(threads), "--quiet", "--log-json", str(log_path),
                                  "-o", str(result_path)]
            times[max_iter] = fit_seconds(command, mpi_environment(threads), log_path)
        per_iteration.append((times[fixed.LONG_MAX_ITER] - times[fixed.SHORT_MAX_ITER]) /
                             (fixed.LONG_MAX_ITER - fixed.SHORT_MAX_ITER))
    return statistics.median(per_iteration)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serial", default=str(REPO_ROOT / "build/release/kseg"))
    parser.add_argument("--mpi", default=str(REPO_ROOT / "build/mpi/kseg"))
    parser.add_argument("--mpirun", default="mpirun")
    parser.add_argument("--configs", default="1e7,8,8;1e6,16,64",
                        help="n,d,k items separated by ';' (default 1e7,8,8;1e6,16,64)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    machine = fixed.machine_description(args.mpi)
    mpirun = [args.mpirun, "--oversubscribe", "--bind-to", "none"]
    setups = [
        ("serial build, 1 thread", [], args.serial, 1),
        ("serial build, 2 threads", [], args.serial, 2),
        ("MPI 1 rank x 1 thread", mpirun + ["-n", "1"], args.mpi, 1),
        ("MPI 1 rank x 2 threads", mpirun + ["-n", "1"], args.mpi, 2),
        ("MPI 2 ranks x 1 thread", mpirun + ["-n", "2"], args.mpi, 1),
    ]
    print(f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
          f"kseg tree {machine['kseg_tree']}; load before {machine['load_before']}; "
          f"{machine['date']}. Medians of {args.repeats} repeats.\n")
    print("| n | d | k | setup | cores | s/iter | speedup vs MPI 1x1 | efficiency |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="kseg-mpi-scaling-") as directory:
        scratch = Path(directory)
        for n, d, k, kind in fixed.parse_configs(args.configs):
            data_path = scratch / "data.h5"
            fixed.write_dataset(data_path, n, d, k, kind)
            results = {name: measure((name, launcher, kseg, threads), data_path, k, args.repeats,
                                     scratch)
                       for name, launcher, kseg, threads in setups}
            base = results["MPI 1 rank x 1 thread"]
            for name, launcher, kseg, threads in setups:
                cores = threads * (2 if "2 ranks" in name else 1)
                speedup = base / results[name]
                print(f"| {n:.0e} | {d} | {k} | {name} | {cores} | {results[name]:.4f} "
                      f"| {speedup:.2f} | {100 * speedup / cores:.0f} % |", flush=True)
            data_path.unlink()
    print(f"\nLoad after: {'%.2f %.2f %.2f' % os.getloadavg()}")


if __name__ == "__main__":
    main()
