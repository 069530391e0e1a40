#!/usr/bin/env python3
"""Fixed-work k-means benchmark: kseg against scikit-learn's Lloyd KMeans on the same float32 data,
the same initial centers and the same thread count, reporting seconds per iteration, peak RSS and
inertia agreement as a markdown table and a CSV (see bench/README.md for the method)."""

import argparse
import csv
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIGS = "1e6,8,8;1e6,16,64;1e7,8,8;1e6,64,256;1e7,16,16"
FEATURES_PATH = "/customers/features"
CENTERS_PATH = "/init/centers"
# The per-iteration cost is (T(max_iter=20) - T(max_iter=1)) / 19; both fits share the fixed costs
# (validation, centering, the final assignment pass), so the difference is 19 pure Lloyd iterations.
LONG_MAX_ITER = 20
SHORT_MAX_ITER = 1
DATA_SEED = 20240611
CENTERS_SEED = 7
MIB = 1024.0 * 1024.0


def parse_configs(text):
    """Parses "n,d,k;n,d,k" (n may be written 1e6) into a list of (n, d, k) integer tuples."""
    configs = []
    for item in text.replace(" ", "").split(";"):
        if not item:
            continue
        parts = item.split(",")
        if len(parts) != 3:
            raise argparse.ArgumentTypeError(f"config {item!r} is not n,d,k")
        n, d, k = (int(float(p)) for p in parts)
        if n <= 0 or d <= 0 or k <= 0 or k > n:
            raise argparse.ArgumentTypeError(f"config {item!r} needs n >= k > 0 and d > 0")
        configs.append((n, d, k))
    if not configs:
        raise argparse.ArgumentTypeError("no configs given")
    return configs


def config_label(n, d, k):
    return f"n={n:.0e}, d={d}, k={k}".replace("e+0", "e")


# ----------------------------------------------------------------------------------------------
# Data


def write_dataset(path, n, d, k):
    """Writes uniform [0,1)^d float32 rows as a contiguous /customers/features and k distinct rows
    (fixed seed) as float64 /init/centers. Uniform data has no cluster structure for Lloyd to lock
    onto, so the labels keep changing for far more than 20 iterations and both tools do the full
    fixed amount of work (the n_iter columns of the result confirm it)."""
    rng = np.random.default_rng(DATA_SEED + 1000003 * d + k)
    features = rng.random((n, d), dtype=np.float32)
    center_rows = np.random.default_rng(CENTERS_SEED).choice(n, size=k, replace=False)
    centers = features[center_rows].astype(np.float64)
    with h5py.File(path, "w") as file:
        # No chunks and no compression: a contiguous dataset is what a benchmark reader should get,
        # so that the load is a plain read and cannot distort anything.
        file.create_dataset(FEATURES_PATH, data=features)
        file.create_dataset(CENTERS_PATH, data=centers)
    return features.nbytes / MIB


def float64_inertia(data_path, centers, rows_per_chunk=65536):
    """Re-evaluates the k-means objective of `centers` in float64: sum over rows of the squared
    distance to the nearest center. Rows are read in chunks so that memory stays bounded for any
    n. Distances use the expansion |x-m|^2 - 2(x-m).(c-m) + |c-m|^2 around the data mean m, which
    in float64 is accurate far beyond the float32 differences being compared and lets one GEMM per
    chunk do the work."""
    centers = np.asarray(centers, dtype=np.float64)
    with h5py.File(data_path, "r") as file:
        features = file[FEATURES_PATH]
        n = features.shape[0]
        mean = np.zeros(features.shape[1])
        for start in range(0, n, rows_per_chunk):
            mean += features[start:start + rows_per_chunk].astype(np.float64).sum(axis=0)
        mean /= n
        shifted_centers = centers - mean
        center_norms = np.einsum("ij,ij->i", shifted_centers, shifted_centers)
        total = 0.0
        for start in range(0, n, rows_per_chunk):
            rows = features[start:start + rows_per_chunk].astype(np.float64) - mean
            row_norms = np.einsum("ij,ij->i", rows, rows)
            distances = row_norms[:, None] - 2.0 * (rows @ shifted_centers.T) + center_norms[None, :]
            total += float(np.maximum(distances.min(axis=1), 0.0).sum())
    return total


# ----------------------------------------------------------------------------------------------
# Running one measured process


def run_with_peak_rss(command, env, scratch_dir):
    """Runs `command` and returns (completed process, peak RSS in MiB of that process alone).
    GNU time reports the max RSS of exactly the process it runs. Without it, a fresh Python
    wrapper runs the command: RUSAGE_CHILDREN of the wrapper then covers that one child only,
    so its ru_maxrss is exact too (getrusage deltas in this long-lived script would not be,
    because ru_maxrss is a maximum over all children ever waited for)."""
    rss_file = tempfile.NamedTemporaryFile(dir=scratch_dir, prefix="rss.", suffix=".txt", delete=False)
    rss_file.close()
    if os.access("/usr/bin/time", os.X_OK):
        wrapped = ["/usr/bin/time", "-o", rss_file.name, "-f", "%M"] + command
    else:
        wrapper_code = (
            "import resource, subprocess, sys\n"
            "status = subprocess.run(sys.argv[2:]).returncode\n"
            "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
            "sys.exit(status)\n"
        )
        wrapped = [sys.executable, "-c", wrapper_code, rss_file.name] + command
    completed = subprocess.run(wrapped, env=env, capture_output=True, text=True)
    try:
        # Both GNU time's %M and Linux ru_maxrss are in KiB. The last line is used because GNU time
        # writes "Command exited with non-zero status" above the number when the command failed.
        lines = Path(rss_file.name).read_text().strip().splitlines()
        peak_rss_mib = int(lines[-1]) / 1024.0 if lines else float("nan")
    except (OSError, ValueError):
        peak_rss_mib = float("nan")
    os.unlink(rss_file.name)
    if completed.returncode != 0:
        raise RuntimeError(f"command failed with status {completed.returncode}: {' '.join(command)}\n"
                           f"stdout: {completed.stdout[-2000:]}\nstderr: {completed.stderr[-2000:]}")
    return completed, peak_rss_mib


def thread_env(threads):
    """The environment of every measured process: the same OpenMP thread count for both tools, and
    nothing inherited that could change it."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def measure_kseg(kseg, data_path, k, max_iter, threads, scratch_dir, keep_centers_as=None):
    """Runs `kseg cluster` once and returns its timings from the JSON log. fit_seconds of the
    "done" event excludes the HDF5 load and the result write, like the sklearn timing below."""
    log_path = scratch_dir / "kseg.log.jsonl"
    result_path = scratch_dir / "kseg.result.h5"
    for stale in (log_path, result_path):
        stale.unlink(missing_ok=True)
    command = [str(kseg), "cluster", f"{data_path}:{FEATURES_PATH}", "-k", str(k),
               "--init", f"{data_path}:{CENTERS_PATH}", "--tol", "0", "--max-iter", str(max_iter),
               "--threads", str(threads), "--quiet", "--log-json", str(log_path), "-o", str(result_path)]
    started = time.perf_counter()
    _, peak_rss_mib = run_with_peak_rss(command, thread_env(threads), scratch_dir)
    process_seconds = time.perf_counter() - started
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    done = [event for event in events if event.get("event") == "done"][-1]
    iteration_seconds = [event["seconds"] for event in events if event.get("event") == "iteration"]
    if keep_centers_as is not None:
        with h5py.File(result_path, "r") as file:
            np.save(keep_centers_as, file["/model/centroids"][...])
    log_path.unlink()
    result_path.unlink()
    return {
        "fit_seconds": done["fit_seconds"],
        "load_seconds": done["load_seconds"],
        "n_iter": done["n_iter"],
        "inertia": done["inertia"],
        "iteration_seconds": iteration_seconds,
        "process_seconds": process_seconds,
        "peak_rss_mib": peak_rss_mib,
    }


def sklearn_worker(data_path, k, max_iter, threads, centers_out):
    """Runs in its own process (hidden --sklearn-worker mode) so that its peak RSS is its own: loads
    the file with h5py, fits KMeans with the given centers and prints one JSON line."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    with h5py.File(data_path, "r") as file:
        features = file[FEATURES_PATH][...]
        centers = file[CENTERS_PATH][...]
    load_seconds = time.perf_counter() - started
    model = KMeans(n_clusters=k, init=centers, n_init=1, algorithm="lloyd", max_iter=max_iter, tol=0)
    # threadpoolctl bounds both OpenMP (sklearn's Lloyd loop) and BLAS; inside its OpenMP region
    # scikit-learn already pins BLAS to one thread, as kseg does with OpenBLAS.
    with threadpool_limits(limits=threads):
        started = time.perf_counter()
        model.fit(features)
        fit_seconds = time.perf_counter() - started
    if centers_out:
        np.save(centers_out, model.cluster_centers_.astype(np.float64))
    print(json.dumps({"fit_seconds": fit_seconds, "load_seconds": load_seconds,
                      "n_iter": int(model.n_iter_), "inertia": float(model.inertia_)}))


def measure_sklearn(data_path, k, max_iter, threads, scratch_dir, keep_centers_as=None):
    command = [sys.executable, str(Path(__file__).resolve()), "--sklearn-worker", str(data_path),
               str(k), str(max_iter), str(threads), str(keep_centers_as or "")]
    started = time.perf_counter()
    completed, peak_rss_mib = run_with_peak_rss(command, thread_env(threads), scratch_dir)
    process_seconds = time.perf_counter() - started
    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    measured.update(process_seconds=process_seconds, peak_rss_mib=peak_rss_mib)
    return measured


# ----------------------------------------------------------------------------------------------
# One configuration


def benchmark_config(n, d, k, args, scratch_dir, raw_rows):
    data_path = scratch_dir / f"uniform_n{n}_d{d}_k{k}.h5"
    log(f"{config_label(n, d, k)}: writing {data_path.name}")
    data_mib = write_dataset(data_path, n, d, k)
    kseg_centers_path = scratch_dir / "kseg_centers.npy"
    sklearn_centers_path = scratch_dir / "sklearn_centers.npy"

    runs = {(tool, max_iter): [] for tool in ("kseg", "sklearn") for max_iter in (SHORT_MAX_ITER, LONG_MAX_ITER)}
    for repeat in range(args.repeats):
        # The tools alternate inside each repeat so that slow drift in machine load (it is shared)
        # spreads over both rather than penalizing whichever ran last.
        for max_iter in (SHORT_MAX_ITER, LONG_MAX_ITER):
            keep = repeat == 0 and max_iter == LONG_MAX_ITER
            kseg_run = measure_kseg(args.kseg, data_path, k, max_iter, args.threads, scratch_dir,
                                    kseg_centers_path if keep else None)
            sklearn_run = measure_sklearn(data_path, k, max_iter, args.threads, scratch_dir,
                                          sklearn_centers_path if keep else None)
            for tool, run in (("kseg", kseg_run), ("sklearn", sklearn_run)):
                runs[(tool, max_iter)].append(run)
                raw_rows.append({"n": n, "d": d, "k": k, "tool": tool, "max_iter": max_iter, "repeat": repeat,
                                 "fit_seconds": run["fit_seconds"], "load_seconds": run["load_seconds"],
                                 "process_seconds": round(run["process_seconds"], 6), "n_iter": run["n_iter"],
                                 "inertia": run["inertia"], "peak_rss_mib": round(run["peak_rss_mib"], 1)})
            log(f"  repeat {repeat + 1}/{args.repeats} max_iter={max_iter}: "
                f"kseg fit {kseg_run['fit_seconds']:.3f}s (n_iter {kseg_run['n_iter']}), "
                f"sklearn fit {sklearn_run['fit_seconds']:.3f}s (n_iter {sklearn_run['n_iter']})")

    log(f"  re-evaluating both final inertias in float64")
    kseg_inertia64 = float64_inertia(data_path, np.load(kseg_centers_path))
    sklearn_inertia64 = float64_inertia(data_path, np.load(sklearn_centers_path))
    for path in (kseg_centers_path, sklearn_centers_path):
        path.unlink()
    if not args.keep:
        data_path.unlink()

    def median_of(tool, max_iter, field):
        return statistics.median(run[field] for run in runs[(tool, max_iter)])

    row = {"n": n, "d": d, "k": k, "data_mib": round(data_mib, 1)}
    for tool in ("kseg", "sklearn"):
        t_long = median_of(tool, LONG_MAX_ITER, "fit_seconds")
        t_short = median_of(tool, SHORT_MAX_ITER, "fit_seconds")
        row[f"{tool}_s_per_iter"] = (t_long - t_short) / (LONG_MAX_ITER - SHORT_MAX_ITER)
        row[f"{tool}_fit20_s"] = t_long
        row[f"{tool}_fit1_s"] = t_short
        row[f"{tool}_peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs[(tool, LONG_MAX_ITER)])
        row[f"{tool}_n_iter"] = runs[(tool, LONG_MAX_ITER)][0]["n_iter"]
        row[f"{tool}_inertia_reported"] = runs[(tool, LONG_MAX_ITER)][0]["inertia"]
        row[f"{tool}_load_s"] = median_of(tool, LONG_MAX_ITER, "load_seconds")
        row[f"{tool}_process20_s"] = median_of(tool, LONG_MAX_ITER, "process_seconds")
    # kseg's own per-iteration timings (the median over all iterations of all 20-iteration runs)
    # cross-check the difference method; they cover the assignment and update of one iteration.
    row["kseg_log_median_s_per_iter"] = statistics.median(
        s for run in runs[("kseg", LONG_MAX_ITER)] for s in run["iteration_seconds"])
    row["ratio_sklearn_over_kseg"] = row["sklearn_s_per_iter"] / row["kseg_s_per_iter"]
    row["kseg_inertia_float64"] = kseg_inertia64
    row["sklearn_inertia_float64"] = sklearn_inertia64
    row["inertia_rel_diff"] = abs(kseg_inertia64 - sklearn_inertia64) / sklearn_inertia64
    required_ratio = 3.0 if d == 8 else 1.0
    row["required_ratio"] = required_ratio
    row["meets_bar"] = "yes" if row["ratio_sklearn_over_kseg"] >= required_ratio and row["ratio_sklearn_over_kseg"] > 1.0 else "NO"
    log(f"  kseg {row['kseg_s_per_iter']:.4f} s/iter, sklearn {row['sklearn_s_per_iter']:.4f} s/iter, "
        f"ratio {row['ratio_sklearn_over_kseg']:.2f}, inertia rel diff {row['inertia_rel_diff']:.2e}")
    return row


# ----------------------------------------------------------------------------------------------
# Reporting


def machine_description(kseg):
    """Collects what a reader needs to compare runs: CPU, cores, memory, tool and library versions,
    and the source tree state that built kseg (other developers change it while benchmarks run)."""
    description = {}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        description["cpu"] = fields.get("Model name", "?").strip()
        flags = fields.get("Flags", "")
        description["avx512"] = "yes" if "avx512f" in flags else "no"
    except OSError:
        description["cpu"] = platform.processor() or "?"
    description["cores"] = os.cpu_count()
    with open("/proc/meminfo") as meminfo:
        kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    description["memory_gib"] = round(kib / 1024 / 1024, 1)
    description["kseg"] = subprocess.run([str(kseg), "--version"], capture_output=True, text=True).stdout.strip()
    git = ["git", "-C", str(REPO_ROOT)]
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    description["kseg_tree"] = f"{commit}{' + uncommitted changes' if dirty else ''}"
    description["kseg_binary_built"] = datetime.datetime.fromtimestamp(
        Path(kseg).stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for package in ("scikit-learn", "numpy", "h5py", "threadpoolctl"):
        description[package] = importlib.metadata.version(package)
    description["python"] = platform.python_version()
    # The machine is shared; the load average before and after the run tells how much other work
    # competed with the two benchmark threads.
    description["load_before"] = "%.2f %.2f %.2f" % os.getloadavg()
    description["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return description


def markdown_report(rows, machine, args, command_line):
    lines = [
        "## Fixed-work k-means vs scikit-learn",
        "",
        f"Command: `{command_line}`",
        "",
        f"Machine: {machine['cpu']} (AVX-512: {machine.get('avx512', '?')}), {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB; {machine['kseg']} (tree {machine['kseg_tree']}, binary built "
        f"{machine['kseg_binary_built']}); scikit-learn {machine['scikit-learn']}, numpy {machine['numpy']}, "
        f"h5py {machine['h5py']}, threadpoolctl {machine['threadpoolctl']}, Python {machine['python']}; "
        f"{machine['date']}. Load average (1, 5, 15 min) before: {machine['load_before']}, after: "
        f"{machine['load_after']}.",
        "",
        f"float32 uniform [0,1)^d data, the same initial centers for both, tol 0, {args.threads} threads, "
        f"medians of {args.repeats} repeats. s/iter = (T(max_iter=20) − T(max_iter=1)) / 19 of the fit "
        "time alone (no file I/O). Bar: ratio > 1 everywhere, ≥ 3 for d = 8.",
        "",
        "| config (n, d, k) | data MiB | kseg s/iter | sklearn s/iter | ratio sklearn/kseg | bar | "
        "kseg log median s/iter | kseg fit 20 it. s | sklearn fit 20 it. s | kseg peak RSS MiB | "
        "sklearn peak RSS MiB | n_iter kseg / sklearn | inertia rel. diff (float64) |",
        "|---|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    for row in rows:
        bar = f"{row['meets_bar']} (≥ {row['required_ratio']:g}×)" if row["required_ratio"] > 1 else f"{row['meets_bar']} (> 1×)"
        lines.append(
            f"| {row['n']:.0e}, {row['d']}, {row['k']} | {row['data_mib']:.0f} | {row['kseg_s_per_iter']:.4f} | "
            f"{row['sklearn_s_per_iter']:.4f} | {row['ratio_sklearn_over_kseg']:.2f} | {bar} | "
            f"{row['kseg_log_median_s_per_iter']:.4f} | {row['kseg_fit20_s']:.3f} | {row['sklearn_fit20_s']:.3f} | "
            f"{row['kseg_peak_rss_mib']:.0f} | {row['sklearn_peak_rss_mib']:.0f} | "
            f"{row['kseg_n_iter']} / {row['sklearn_n_iter']} | {row['inertia_rel_diff']:.1e} |".replace("e+0", "e"))
    return "\n".join(lines) + "\n"


def write_csv(path, rows):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)


def log(message):
    print(message, file=sys.stderr, flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--sklearn-worker":
        data_path, k, max_iter, threads, centers_out = sys.argv[2:7]
        sklearn_worker(data_path, int(k), int(max_iter), int(threads), centers_out)
        return 0

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=parse_configs, default=parse_configs(DEFAULT_CONFIGS),
                        help=f'"n,d,k" items separated by ";" (default "{DEFAULT_CONFIGS}")')
    parser.add_argument("--repeats", type=int, default=3, help="measurements per tool and max_iter (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads for both tools (default 2)")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "bench" / "out",
                        help="scratch data and results (default bench/out)")
    parser.add_argument("--kseg", type=Path, default=REPO_ROOT / "build" / "release" / "kseg",
                        help="kseg binary (default build/release/kseg)")
    parser.add_argument("--keep", action="store_true", help="keep the generated HDF5 data files")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not os.access(args.kseg, os.X_OK):
        parser.error(f"{args.kseg} is not an executable kseg; build it (see bench/README.md)")
    args.kseg = args.kseg.resolve()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    scratch_dir = args.out_dir.resolve()
    command_line = shlex.join([os.path.relpath(sys.executable, Path.cwd()), os.path.relpath(__file__, Path.cwd())] + sys.argv[1:])

    machine = machine_description(args.kseg)
    log(f"machine: {machine}")
    rows, raw_rows = [], []
    for n, d, k in args.configs:
        rows.append(benchmark_config(n, d, k, args, scratch_dir, raw_rows))

    machine["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()
    report = markdown_report(rows, machine, args, command_line)
    print(report)
    (scratch_dir / "kmeans_fixed_work.md").write_text(report)
    write_csv(scratch_dir / "kmeans_fixed_work.csv", rows)
    write_csv(scratch_dir / "kmeans_fixed_work_runs.csv", raw_rows)
    log(f"wrote {scratch_dir / 'kmeans_fixed_work.md'}, kmeans_fixed_work.csv and kmeans_fixed_work_runs.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
