#!/usr/bin/env python3
"""Fixed-work k-means benchmark: kseg against scikit-learn (lloyd and elkan), oneDAL (sklearnex) and FAISS
on the same float32 data, the same initial centers and the same thread count, reporting seconds per
iteration, their ratio to the machine's floor (bench/floor), peak RSS and inertia agreement as markdown
tables, CSVs and a chart (see bench/README.md for the method)."""

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
DEFAULT_CONFIGS = "1e6,8,8;1e6,16,64;1e7,8,8;1e6,64,256;1e7,16,16;customers:1e7,8"
# `kseg generate customers` writes 9 features per customer.
CUSTOMER_FEATURES = 9
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
    """Parses "n,d,k;n,d,k" (n may be written 1e6) into a list of (n, d, k, kind) tuples. An item
    "customers:n,k" is the customer-like config: the 9 features of `kseg generate customers`,
    prepared as in prepare_customer_features (so d is 9)."""
    configs = []
    for item in text.replace(" ", "").split(";"):
        if not item:
            continue
        kind = "uniform"
        if item.startswith("customers:"):
            kind, item = "customers", item[len("customers:"):]
            parts = item.split(",")
            if len(parts) != 2:
                raise argparse.ArgumentTypeError(f"config customers:{item!r} is not customers:n,k")
            parts = [parts[0], str(CUSTOMER_FEATURES), parts[1]]
        else:
            parts = item.split(",")
        if len(parts) != 3:
            raise argparse.ArgumentTypeError(f"config {item!r} is not n,d,k")
        n, d, k = (int(float(p)) for p in parts)
        if n <= 0 or d <= 0 or k <= 0 or k > n:
            raise argparse.ArgumentTypeError(f"config {item!r} needs n >= k > 0 and d > 0")
        configs.append((n, d, k, kind))
    if not configs:
        raise argparse.ArgumentTypeError("no configs given")
    return configs


def config_label(n, d, k, kind="uniform"):
    prefix = "customers " if kind == "customers" else ""
    return f"{prefix}n={n:.0e}, d={d}, k={k}".replace("e+0", "e")


def row_label(row):
    """The config column of the tables: "1e6, 8, 8", or "customers 1e7, 9, 8"."""
    prefix = "customers " if row.get("data") == "customers" else ""
    return f"{prefix}{row['n']:.0e}, {row['d']}, {row['k']}".replace("e+0", "e")


# ----------------------------------------------------------------------------------------------
# Data


def prepare_customer_features(raw):
    """The customer-like data: the skewed, non-negative columns of `kseg generate customers`
    (recency, frequency, monetary, tenure, average basket, income, categories) go through
    log1p, then every column is standardized to mean 0 and variance 1, as an analyst would prepare
    them for k-means (web_share and age stay linear). The result has the heavy clusters and
    overlaps of real customer data rather than uniform noise."""
    features = raw.astype(np.float64)
    names = ["recency_days", "frequency", "monetary", "tenure_days", "avg_basket", "web_share", "age",
             "income", "n_categories"]
    for column, name in enumerate(names):
        if name not in ("web_share", "age"):
            features[:, column] = np.log1p(np.maximum(features[:, column], 0.0))
    features -= features.mean(axis=0)
    scale = features.std(axis=0)
    features /= np.where(scale > 0, scale, 1.0)
    return features.astype(np.float32)


def generate_customer_features(kseg, n, scratch_dir):
    """Runs `kseg generate customers --n N` (seed 1) and returns its prepared float32 features."""
    raw_path = scratch_dir / f"customers_raw_n{n}.h5"
    subprocess.run([str(kseg), "generate", "customers", "--n", str(n), "--seed", "1", "-q",
                    "-o", str(raw_path)], check=True)
    with h5py.File(raw_path, "r") as file:
        raw = file[FEATURES_PATH][...]
    raw_path.unlink()
    return prepare_customer_features(raw)


def write_dataset(path, n, d, k, kind="uniform", kseg=None):
    """Writes the float32 rows as a contiguous /customers/features and k distinct rows (fixed seed)
    as float64 /init/centers. Uniform [0,1)^d data has no cluster structure for Lloyd to lock
    onto, so the labels keep changing for far more than 20 iterations and both tools do the full
    fixed amount of work (the n_iter columns of the result confirm it). kind "customers" writes the
    customer-like features instead (generate_customer_features)."""
    if kind == "customers":
        features = generate_customer_features(kseg, n, path.parent)
    else:
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


# The peers, in table order: tool key -> (label, module that must import for the peer to count as
# installed). "sklearn" keeps its historical key so that the CSV columns of earlier runs still match.
PEERS = {
    "sklearn": ("scikit-learn lloyd", "sklearn"),
    "sklearn_elkan": ("scikit-learn elkan", "sklearn"),
    "onedal": ("oneDAL (sklearnex)", "sklearnex"),
    "faiss": ("FAISS", "faiss"),
}
ALL_TOOLS = ["kseg"] + list(PEERS)
TOOL_LABELS = {"kseg": "kseg", **{tool: label for tool, (label, _) in PEERS.items()}}


def peer_worker(tool, data_path, k, max_iter, threads, centers_out):
    """Runs in its own process (hidden --worker mode) so that its peak RSS is its own: imports the
    peer, loads the file with h5py, fits from the given centers with tol 0 and prints one JSON line.
    Imports happen before the clock starts; only the fit is timed."""
    extra = {}
    if tool == "onedal":
        # sklearnex falls back to stock scikit-learn silently for parameters oneDAL does not
        # support; its logger says which path ran, so the records are kept and checked below.
        import logging

        messages = []

        class KeepMessages(logging.Handler):
            def emit(self, record):
                messages.append(record.getMessage())

        logger = logging.getLogger("sklearnex")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(KeepMessages())
        logger.propagate = False
        from sklearnex import patch_sklearn

        patch_sklearn(["sklearn.cluster.KMeans"])
        try:
            # oneDAL threads through TBB, which OMP_NUM_THREADS does not bound; daal4py sets it.
            import daal4py

            daal4py.daalinit(threads)
            extra["onedal_threads"] = daal4py.num_threads()
        except ImportError:
            extra["onedal_threads"] = None
    if tool in ("sklearn", "sklearn_elkan", "onedal"):
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits
    elif tool == "faiss":
        import faiss

        faiss.omp_set_num_threads(threads)
    else:
        raise SystemExit(f"unknown peer {tool}")

    started = time.perf_counter()
    with h5py.File(data_path, "r") as file:
        features = file[FEATURES_PATH][...]
        centers = file[CENTERS_PATH][...]
    load_seconds = time.perf_counter() - started
    n, d = features.shape

    if tool == "faiss":
        # max_points_per_centroid above n/k: FAISS otherwise trains on a sample of 256 rows per
        # centroid, which would be less work than the others do. The initial centers go in through
        # init_centroids (copied into clus.centroids), so FAISS starts where the others start.
        model = faiss.Kmeans(d, k, niter=max_iter, verbose=False, max_points_per_centroid=n // k + 1,
                             min_points_per_centroid=1)
        started = time.perf_counter()
        model.train(features, init_centroids=np.ascontiguousarray(centers, dtype=np.float32))
        fit_seconds = time.perf_counter() - started
        final_centers = np.asarray(model.centroids, dtype=np.float64)
        n_iter = len(model.obj)
        # FAISS's objective is that of the last assignment, before the last centroid update.
        inertia = float(model.obj[-1])
        extra["faiss_compile_options"] = faiss.get_compile_options().strip()
    else:
        algorithm = "elkan" if tool == "sklearn_elkan" else "lloyd"
        model = KMeans(n_clusters=k, init=centers, n_init=1, algorithm=algorithm, max_iter=max_iter, tol=0)
        if tool == "onedal" and type(model).__module__.split(".")[0] != "sklearnex":
            raise SystemExit(f"sklearnex did not patch KMeans ({type(model).__module__})")
        # threadpoolctl bounds both OpenMP (sklearn's Lloyd loop) and BLAS; inside its OpenMP region
        # scikit-learn already pins BLAS to one thread, as kseg does with OpenBLAS.
        with threadpool_limits(limits=threads):
            started = time.perf_counter()
            model.fit(features)
            fit_seconds = time.perf_counter() - started
        final_centers = model.cluster_centers_.astype(np.float64)
        n_iter = int(model.n_iter_)
        inertia = float(model.inertia_)
        if tool == "onedal":
            accelerated = any("KMeans.fit: running accelerated" in m for m in messages)
            fallback = any("KMeans.fit" in m and "fallback" in m.lower() for m in messages)
            extra["backend"] = "oneDAL" if accelerated and not fallback else "FALLBACK to scikit-learn"
    if centers_out:
        np.save(centers_out, final_centers)
    print(json.dumps({"fit_seconds": fit_seconds, "load_seconds": load_seconds,
                      "n_iter": n_iter, "inertia": inertia, **extra}))


def sklearn_worker(data_path, k, max_iter, threads, centers_out):
    """The original hidden --sklearn-worker mode, kept for anyone who calls it directly."""
    peer_worker("sklearn", data_path, k, max_iter, threads, centers_out)


def peer_env(tool, threads):
    """FAISS parallelizes over rows with OpenMP and calls OpenBLAS inside each thread; issue 5 has
    its OpenBLAS pinned to one thread so the two layers do not oversubscribe the cores."""
    env = thread_env(threads)
    if tool == "faiss":
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["MKL_NUM_THREADS"] = "1"
    return env


def measure_peer(tool, data_path, k, max_iter, threads, scratch_dir, keep_centers_as=None):
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, str(data_path),
               str(k), str(max_iter), str(threads), str(keep_centers_as or "")]
    started = time.perf_counter()
    completed, peak_rss_mib = run_with_peak_rss(command, peer_env(tool, threads), scratch_dir)
    process_seconds = time.perf_counter() - started
    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    measured.update(process_seconds=process_seconds, peak_rss_mib=peak_rss_mib)
    return measured


def measure_sklearn(data_path, k, max_iter, threads, scratch_dir, keep_centers_as=None):
    return measure_peer("sklearn", data_path, k, max_iter, threads, scratch_dir, keep_centers_as)


def installed_peers(tools):
    """Which of the requested peers import in a fresh interpreter; a peer that does not is reported
    as not installed in the tables rather than failing the run."""
    available, missing = [], []
    for tool in tools:
        if tool == "kseg":
            continue
        module = PEERS[tool][1]
        ok = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0
        (available if ok else missing).append(tool)
    return available, missing


def measure_floor(args):
    """The per-iteration floor of each config from bench/floor (read bandwidth and sgemm peak with
    the same thread count), or from a saved --json output given with --floor-json."""
    configs = [f"{n},{d},{k}" for n, d, k, _ in args.configs]
    if args.floor_json:
        text = Path(args.floor_json).read_text()
    else:
        log("measuring the floor with bench/floor (read bandwidth, sgemm peak)")
        text = subprocess.run(["bash", str(REPO_ROOT / "bench" / "floor"), "--json", "--threads", str(args.threads)]
                              + configs, capture_output=True, text=True, check=True).stdout
    floor = json.loads(text.strip().splitlines()[-1])
    floor["by_config"] = {(int(c["n"]), int(c["d"]), int(c["k"])): c for c in floor["configs"]}
    # A saved floor may lack a config of this run: its floor follows from the two measured rates
    # exactly as bench/floor computes it.
    for n, d, k, _ in args.configs:
        if (n, d, k) not in floor["by_config"]:
            read_s = n * d * 4 / (floor["read_bandwidth_gb_s"] * 1e9)
            flop_s = 2.0 * n * k * d / (floor["sgemm_gflop_s"] * 1e9)
            floor["by_config"][(n, d, k)] = {"n": n, "d": d, "k": k, "read_s": read_s, "flop_s": flop_s,
                                             "floor_s": max(read_s, flop_s),
                                             "bound": "memory" if read_s > flop_s else "compute"}
    return floor


# ----------------------------------------------------------------------------------------------
# One configuration


def benchmark_config(n, d, k, kind, args, scratch_dir, raw_rows, floor):
    data_path = scratch_dir / f"{kind}_n{n}_d{d}_k{k}.h5"
    log(f"{config_label(n, d, k, kind)}: writing {data_path.name}")
    data_mib = write_dataset(data_path, n, d, k, kind, args.kseg)
    tools = ["kseg"] + args.peers
    centers_paths = {tool: scratch_dir / f"{tool}_centers.npy" for tool in tools}

    runs = {(tool, max_iter): [] for tool in tools for max_iter in (SHORT_MAX_ITER, LONG_MAX_ITER)}
    for repeat in range(args.repeats):
        # The tools alternate inside each repeat so that slow drift in machine load (it is shared)
        # spreads over all of them rather than penalizing whichever ran last.
        for max_iter in (SHORT_MAX_ITER, LONG_MAX_ITER):
            keep = repeat == 0 and max_iter == LONG_MAX_ITER
            measured = {}
            for tool in tools:
                keep_as = centers_paths[tool] if keep else None
                if tool == "kseg":
                    run = measure_kseg(args.kseg, data_path, k, max_iter, args.threads, scratch_dir, keep_as)
                else:
                    run = measure_peer(tool, data_path, k, max_iter, args.threads, scratch_dir, keep_as)
                measured[tool] = run
                runs[(tool, max_iter)].append(run)
                raw_rows.append({"data": kind, "n": n, "d": d, "k": k, "tool": tool, "max_iter": max_iter, "repeat": repeat,
                                 "fit_seconds": run["fit_seconds"], "load_seconds": run["load_seconds"],
                                 "process_seconds": round(run["process_seconds"], 6), "n_iter": run["n_iter"],
                                 "inertia": run["inertia"], "peak_rss_mib": round(run["peak_rss_mib"], 1),
                                 "backend": run.get("backend", "")})
            log(f"  repeat {repeat + 1}/{args.repeats} max_iter={max_iter}: " + ", ".join(
                f"{tool} fit {run['fit_seconds']:.3f}s (n_iter {run['n_iter']})" for tool, run in measured.items()))

    log(f"  re-evaluating the final inertias in float64")
    inertia64 = {tool: float64_inertia(data_path, np.load(centers_paths[tool])) for tool in tools}
    for path in centers_paths.values():
        path.unlink()
    if not args.keep:
        data_path.unlink()

    def median_of(tool, max_iter, field):
        return statistics.median(run[field] for run in runs[(tool, max_iter)])

    floor_config = floor["by_config"][(n, d, k)] if floor else None
    row = {"data": kind, "n": n, "d": d, "k": k, "data_mib": round(data_mib, 1)}
    row["floor_s_per_iter"] = floor_config["floor_s"] if floor_config else None
    row["floor_bound"] = floor_config["bound"] if floor_config else None
    for tool in ALL_TOOLS:
        measured_tool = tool in tools
        t_long = median_of(tool, LONG_MAX_ITER, "fit_seconds") if measured_tool else None
        t_short = median_of(tool, SHORT_MAX_ITER, "fit_seconds") if measured_tool else None
        first = runs[(tool, LONG_MAX_ITER)][0] if measured_tool else {}
        row[f"{tool}_s_per_iter"] = (t_long - t_short) / (LONG_MAX_ITER - SHORT_MAX_ITER) if measured_tool else None
        row[f"{tool}_fit20_s"] = t_long
        row[f"{tool}_fit1_s"] = t_short
        row[f"{tool}_peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs[(tool, LONG_MAX_ITER)]) if measured_tool else None
        row[f"{tool}_n_iter"] = first.get("n_iter")
        row[f"{tool}_inertia_reported"] = first.get("inertia")
        row[f"{tool}_load_s"] = median_of(tool, LONG_MAX_ITER, "load_seconds") if measured_tool else None
        row[f"{tool}_process20_s"] = median_of(tool, LONG_MAX_ITER, "process_seconds") if measured_tool else None
    # kseg's own per-iteration timings (the median over all iterations of all 20-iteration runs)
    # cross-check the difference method; they cover the assignment and update of one iteration.
    row["kseg_log_median_s_per_iter"] = statistics.median(
        s for run in runs[("kseg", LONG_MAX_ITER)] for s in run["iteration_seconds"])
    for tool in PEERS:
        measured_tool = tool in tools
        row[f"ratio_{tool}_over_kseg"] = row[f"{tool}_s_per_iter"] / row["kseg_s_per_iter"] if measured_tool else None
    for tool in ALL_TOOLS:
        row[f"{tool}_over_floor"] = (row[f"{tool}_s_per_iter"] / row["floor_s_per_iter"]
                                     if tool in tools and row["floor_s_per_iter"] else None)
        row[f"{tool}_inertia_float64"] = inertia64.get(tool)
    for tool in PEERS:
        row[f"{tool}_inertia_rel_diff_to_kseg"] = (abs(inertia64["kseg"] - inertia64[tool]) / inertia64[tool]
                                                   if tool in tools else None)
    row["onedal_backend"] = runs[("onedal", LONG_MAX_ITER)][0].get("backend") if "onedal" in tools else None
    # The historical kseg-vs-scikit-learn columns, under their original names.
    row["kseg_inertia_float64"] = inertia64["kseg"]
    row["sklearn_inertia_float64"] = inertia64.get("sklearn")
    row["inertia_rel_diff"] = row["sklearn_inertia_rel_diff_to_kseg"]
    required_ratio = 3.0 if d == 8 else 1.0
    row["required_ratio"] = required_ratio
    ratio = row["ratio_sklearn_over_kseg"]
    row["meets_bar"] = ("yes" if ratio >= required_ratio and ratio > 1.0 else "NO") if ratio is not None else None
    # Issue 5's floor goal: Lloyd within 1.3x of the floor where d = 8 (memory-bound), 1.5x elsewhere.
    row["floor_goal"] = 1.3 if d == 8 else 1.5
    row["meets_floor_goal"] = (("yes" if row["kseg_over_floor"] <= row["floor_goal"] else "NO")
                               if row["kseg_over_floor"] is not None else None)
    log(f"  " + ", ".join(f"{tool} {row[f'{tool}_s_per_iter']:.4f}" for tool in tools) + " s/iter"
        + (f"; floor {row['floor_s_per_iter']:.4f}" if row["floor_s_per_iter"] else ""))
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
    for package in ("scikit-learn", "numpy", "h5py", "threadpoolctl", "scikit-learn-intelex", "daal", "faiss-cpu"):
        try:
            description[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            description[package] = "not installed"
    description["python"] = platform.python_version()
    # The machine is shared; the load average before and after the run tells how much other work
    # competed with the two benchmark threads.
    description["load_before"] = "%.2f %.2f %.2f" % os.getloadavg()
    description["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return description


def fmt(value, spec, missing="–"):
    return missing if value is None else format(value, spec)


def markdown_report(rows, machine, args, command_line, floor, missing_peers):
    lines = [
        "## Fixed-work k-means vs scikit-learn, oneDAL and FAISS",
        "",
        f"Command: `{command_line}`",
        "",
        f"Machine: {machine['cpu']} (AVX-512: {machine.get('avx512', '?')}), {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB; {machine['kseg']} (tree {machine['kseg_tree']}, binary built "
        f"{machine['kseg_binary_built']}); scikit-learn {machine['scikit-learn']}, scikit-learn-intelex "
        f"{machine['scikit-learn-intelex']} (oneDAL {machine['daal']}), faiss-cpu {machine['faiss-cpu']}, "
        f"numpy {machine['numpy']}, h5py {machine['h5py']}, threadpoolctl {machine['threadpoolctl']}, "
        f"Python {machine['python']}; {machine['date']}. Load average (1, 5, 15 min) before: "
        f"{machine['load_before']}, after: {machine['load_after']}.",
        "",
    ]
    if floor:
        lines += [
            f"Floor (bench/floor, {floor['threads']} threads): read bandwidth {floor['read_bandwidth_gb_s']:.1f} GB/s "
            f"(sum over a {floor['array_gib']:g} GiB float array), sgemm peak {floor['sgemm_gflop_s']:.0f} GFLOP/s "
            f"(OpenBLAS, {floor['gemm_size']}³), medians of {floor['repeats']}; floor per iteration = "
            "max(n·d·4 B / bandwidth, 2·n·k·d / peak).",
            "",
        ]
    if missing_peers:
        lines += ["Not installed (not measured): " + ", ".join(TOOL_LABELS[t] for t in missing_peers) + ".", ""]
    lines += [
        "float32 uniform [0,1)^d data (\"customers\": the 9 features of `kseg generate customers`, log1p on the "
        f"skewed columns, standardized), the same initial centers for every tool, tol 0, {args.threads} threads, "
        f"medians of {args.repeats} repeats. s/iter = (T(max_iter=20) − T(max_iter=1)) / 19 of the fit "
        "time alone (no file I/O). FAISS: OpenMP 2 threads, OpenBLAS 1 thread.",
        "",
    ]
    measured = ["kseg"] + [t for t in PEERS if rows and rows[0].get(f"{t}_s_per_iter") is not None]
    # Table 1: seconds per iteration and the ratios, the figures issue 5 asks for.
    header = "| config (n, d, k) | floor s/iter (bound) | " + " | ".join(
        f"{TOOL_LABELS[t]} s/iter (× floor)" for t in measured) + " | kseg goal | " + " | ".join(
        f"{TOOL_LABELS[t]} / kseg" for t in measured[1:]) + " |"
    lines += ["### Seconds per iteration, ratio to the floor and to kseg", "", header,
              "|---|---:|" + "---:|" * len(measured) + ":---:|" + "---:|" * (len(measured) - 1)]
    for row in rows:
        cells = [row_label(row),
                 f"{fmt(row['floor_s_per_iter'], '.4f')} ({row['floor_bound'] or '–'})"]
        for tool in measured:
            cells.append(f"{fmt(row[f'{tool}_s_per_iter'], '.4f')} ({fmt(row[f'{tool}_over_floor'], '.1f')}×)")
        goal = (f"{row['meets_floor_goal']} (≤ {row['floor_goal']:g}× floor)" if row["meets_floor_goal"] else "–")
        cells.append(goal)
        for tool in measured[1:]:
            cells.append(fmt(row[f"ratio_{tool}_over_kseg"], ".2f"))
        lines.append("| " + " | ".join(cells) + " |")
    # Table 2: memory, iteration counts and agreement of the answers.
    lines += ["", "### Peak RSS, iterations and final inertia (float64 re-evaluation)", "",
              "| config (n, d, k) | data MiB | " + " | ".join(f"{TOOL_LABELS[t]} RSS MiB" for t in measured)
              + " | n_iter " + " / ".join(TOOL_LABELS[t] for t in measured) + " | kseg inertia (float64) | "
              + " | ".join(f"rel. diff {TOOL_LABELS[t]}" for t in measured[1:]) + " |",
              "|---|---:|" + "---:|" * len(measured) + ":---:|---:|" + "---:|" * (len(measured) - 1)]
    for row in rows:
        cells = [row_label(row), f"{row['data_mib']:.0f}"]
        cells += [fmt(row[f"{t}_peak_rss_mib"], ".0f") for t in measured]
        cells.append(" / ".join(fmt(row[f"{t}_n_iter"], "d") for t in measured))
        cells.append(f"{row['kseg_inertia_float64']:.6e}")
        cells += [fmt(row[f"{t}_inertia_rel_diff_to_kseg"], ".1e") for t in measured[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    if "onedal" in measured:
        lines += ["", "oneDAL backend (from the sklearnex log of the first 20-iteration fit): " + ", ".join(
            f"{row_label(row)}: {row['onedal_backend']}" for row in rows) + "."]
    # Table 3: the original kseg-vs-scikit-learn-lloyd table, unchanged, for comparison with earlier runs.
    if "sklearn" in measured:
        lines += [
            "",
            "### kseg vs scikit-learn lloyd (the original table)",
            "",
            "Bar: ratio > 1 everywhere, ≥ 3 for d = 8.",
            "",
            "| config (n, d, k) | data MiB | kseg s/iter | sklearn s/iter | ratio sklearn/kseg | bar | "
            "kseg log median s/iter | kseg fit 20 it. s | sklearn fit 20 it. s | kseg peak RSS MiB | "
            "sklearn peak RSS MiB | n_iter kseg / sklearn | inertia rel. diff (float64) |",
            "|---|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|:---:|---:|",
        ]
        for row in rows:
            bar = f"{row['meets_bar']} (≥ {row['required_ratio']:g}×)" if row["required_ratio"] > 1 else f"{row['meets_bar']} (> 1×)"
            lines.append(
                f"| {row_label(row)} | {row['data_mib']:.0f} | {row['kseg_s_per_iter']:.4f} | "
                f"{row['sklearn_s_per_iter']:.4f} | {row['ratio_sklearn_over_kseg']:.2f} | {bar} | "
                f"{row['kseg_log_median_s_per_iter']:.4f} | {row['kseg_fit20_s']:.3f} | {row['sklearn_fit20_s']:.3f} | "
                f"{row['kseg_peak_rss_mib']:.0f} | {row['sklearn_peak_rss_mib']:.0f} | "
                f"{row['kseg_n_iter']} / {row['sklearn_n_iter']} | {row['inertia_rel_diff']:.1e} |".replace("e+0", "e"))
    return "\n".join(lines) + "\n"


def write_chart(path, rows):
    """Grouped bars of seconds per iteration (log scale), one group per config and one bar per tool,
    with the floor drawn as a black line across each group. Skipped when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed; no chart written")
        return False
    tools = [t for t in ALL_TOOLS if rows[0].get(f"{t}_s_per_iter") is not None]
    width = 0.8 / len(tools)
    figure, axes = plt.subplots(figsize=(2.2 * len(rows) + 2, 4.5))
    for index, tool in enumerate(tools):
        xs = [i - 0.4 + width * (index + 0.5) for i in range(len(rows))]
        # A negative difference (noise on a tiny config) cannot go on a log axis; it is left out.
        ys = [max(row[f"{tool}_s_per_iter"], 1e-6) for row in rows]
        axes.bar(xs, ys, width, label=TOOL_LABELS[tool])
    for i, row in enumerate(rows):
        if row["floor_s_per_iter"]:
            axes.hlines(row["floor_s_per_iter"], i - 0.45, i + 0.45, colors="black", linewidth=2,
                        label="floor" if i == 0 else None)
    axes.set_xticks(range(len(rows)))
    axes.set_xticklabels([("customers\n" if row.get("data") == "customers" else "")
                         + f"n={row['n']:.0e}\nd={row['d']}, k={row['k']}".replace("e+0", "e") for row in rows])
    axes.set_yscale("log")
    axes.set_ylabel("seconds per Lloyd iteration (2 threads)")
    axes.set_title("Fixed-work k-means: s/iter per tool, floor = max(read, sgemm)")
    axes.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path)
    figure.savefig(path.with_suffix(".png"), dpi=110)
    plt.close(figure)
    return True


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
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        tool, data_path, k, max_iter, threads, centers_out = sys.argv[2:8]
        peer_worker(tool, data_path, int(k), int(max_iter), int(threads), centers_out)
        return 0

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=parse_configs, default=parse_configs(DEFAULT_CONFIGS),
                        help=f'"n,d,k" or "customers:n,k" items separated by ";" (default "{DEFAULT_CONFIGS}")')
    parser.add_argument("--repeats", type=int, default=3, help="measurements per tool and max_iter (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every tool (default 2)")
    parser.add_argument("--tools", default=",".join(ALL_TOOLS),
                        help=f"comma-separated subset of {','.join(ALL_TOOLS)} (kseg is always measured)")
    parser.add_argument("--floor-json", type=Path, default=None,
                        help="read the floor from a saved `bench/floor --json` output instead of measuring it")
    parser.add_argument("--no-floor", action="store_true", help="do not measure or report the floor")
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
    requested = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in requested if t not in ALL_TOOLS]
    if unknown:
        parser.error(f"unknown tools {unknown}; choose from {ALL_TOOLS}")
    args.peers, missing_peers = installed_peers([t for t in ALL_TOOLS if t in requested and t != "kseg"])
    for tool in missing_peers:
        log(f"note: {TOOL_LABELS[tool]} is not installed (bash bench/setup.sh); it is reported as such")
    args.kseg = args.kseg.resolve()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    scratch_dir = args.out_dir.resolve()
    command_line = shlex.join([os.path.relpath(sys.executable, Path.cwd()), os.path.relpath(__file__, Path.cwd())] + sys.argv[1:])

    machine = machine_description(args.kseg)
    log(f"machine: {machine}")
    floor = None if args.no_floor else measure_floor(args)
    if floor:
        log(f"floor: read {floor['read_bandwidth_gb_s']:.1f} GB/s, sgemm {floor['sgemm_gflop_s']:.0f} GFLOP/s")
        (scratch_dir / "floor.json").write_text(json.dumps({key: value for key, value in floor.items()
                                                            if key != "by_config"}) + "\n")
    rows, raw_rows = [], []
    for n, d, k, kind in args.configs:
        rows.append(benchmark_config(n, d, k, kind, args, scratch_dir, raw_rows, floor))
        # Written after every config, so that an interrupted run still leaves what it measured.
        machine["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()
        report = markdown_report(rows, machine, args, command_line, floor, missing_peers)
        (scratch_dir / "kmeans_fixed_work.md").write_text(report)
        write_csv(scratch_dir / "kmeans_fixed_work.csv", rows)
        write_csv(scratch_dir / "kmeans_fixed_work_runs.csv", raw_rows)
        write_chart(scratch_dir / "kmeans_fixed_work.svg", rows)
    print(report)
    log(f"wrote {scratch_dir / 'kmeans_fixed_work.md'}, kmeans_fixed_work.csv, kmeans_fixed_work_runs.csv "
        "and kmeans_fixed_work.svg/.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
