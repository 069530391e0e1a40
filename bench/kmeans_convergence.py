#!/usr/bin/env python3
"""Time to convergence: `kseg cluster --algorithm auto` against scikit-learn's KMeans (lloyd and
elkan) at the default tolerance (1e-4, relative to the mean feature variance in both tools) on the
customer-like data and on the Fränti Birch1 set, reporting fit seconds, iterations, inertia
(re-evaluated in float64) and peak RSS (method: bench/README.md)."""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kmeans_fixed_work as fixed_work  # noqa: E402  (shares the data, RSS and machine helpers)

REPO_ROOT = Path(__file__).resolve().parent.parent
FEATURES_PATH = fixed_work.FEATURES_PATH
CENTERS_PATH = fixed_work.CENTERS_PATH
DEFAULT_BIRCH1 = REPO_ROOT.parent / "shared" / "datasets" / "franti" / "birch1.txt"
TOLERANCE = 1e-4
MAX_ITER = 300
PEERS = {"sklearn": "scikit-learn lloyd", "sklearn_elkan": "scikit-learn elkan"}
TOOL_LABELS = {"kseg": "kseg auto", **PEERS}


def write_inputs(path, features, k, seed):
    """Writes the float32 features (contiguous) and k distinct rows drawn with a fixed seed as the
    shared initial centers of the given-init mode."""
    rows = np.random.default_rng(seed).choice(features.shape[0], size=k, replace=False)
    with h5py.File(path, "w") as file:
        file.create_dataset(FEATURES_PATH, data=features)
        file.create_dataset(CENTERS_PATH, data=features[rows].astype(np.float64))


def load_birch1(path):
    """Birch1: 100,000 points in 2-D on a 10 x 10 grid of 100 Gaussian clusters, integer
    coordinates up to about 1e6 (whitespace-separated text). float32 holds them exactly."""
    return np.loadtxt(path, dtype=np.float64).astype(np.float32)


def measure_kseg(kseg, data_path, k, mode, seed, threads, scratch_dir):
    log_path = scratch_dir / "convergence.log.jsonl"
    result_path = scratch_dir / "convergence.result.h5"
    for stale in (log_path, result_path):
        stale.unlink(missing_ok=True)
    init = ["--init", f"{data_path}:{CENTERS_PATH}"] if mode == "given" else ["--seed", str(seed)]
    command = [str(kseg), "cluster", f"{data_path}:{FEATURES_PATH}", "-k", str(k), "--algorithm", "auto",
               "--tol", str(TOLERANCE), "--max-iter", str(MAX_ITER), "--threads", str(threads), "--quiet",
               "--log-json", str(log_path), "-o", str(result_path)] + init
    _, peak_rss_mib = fixed_work.run_with_peak_rss(command, fixed_work.thread_env(threads), scratch_dir)
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    done = [event for event in events if event.get("event") == "done"][-1]
    with h5py.File(result_path, "r") as file:
        centers = file["/model/centroids"][...]
        algorithm = file["/model/centroids"].attrs.get("algorithm", b"")
    log_path.unlink()
    result_path.unlink()
    if isinstance(algorithm, bytes):
        algorithm = algorithm.decode()
    return {"fit_seconds": done["fit_seconds"], "n_iter": done["n_iter"], "centers": centers,
            "peak_rss_mib": peak_rss_mib, "algorithm": str(algorithm) or "auto"}


def peer_worker(tool, data_path, k, mode, seed, threads, centers_out):
    """Hidden --worker mode: one scikit-learn fit in its own process (its peak RSS is its own)."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with h5py.File(data_path, "r") as file:
        features = file[FEATURES_PATH][...]
        centers = file[CENTERS_PATH][...]
    init = centers if mode == "given" else "k-means++"
    model = KMeans(n_clusters=k, init=init, n_init=1, algorithm="elkan" if tool == "sklearn_elkan" else "lloyd",
                   max_iter=MAX_ITER, tol=TOLERANCE, random_state=seed)
    with threadpool_limits(limits=threads):
        started = time.perf_counter()
        model.fit(features)
        fit_seconds = time.perf_counter() - started
    np.save(centers_out, model.cluster_centers_.astype(np.float64))
    print(json.dumps({"fit_seconds": fit_seconds, "n_iter": int(model.n_iter_)}))


def measure_peer(tool, data_path, k, mode, seed, threads, scratch_dir):
    centers_out = scratch_dir / f"{tool}_convergence_centers.npy"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, str(data_path), str(k), mode,
               str(seed), str(threads), str(centers_out)]
    completed, peak_rss_mib = fixed_work.run_with_peak_rss(command, fixed_work.thread_env(threads), scratch_dir)
    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    measured["centers"] = np.load(centers_out)
    centers_out.unlink()
    measured["peak_rss_mib"] = peak_rss_mib
    return measured


def benchmark_dataset(name, data_path, k, args, scratch_dir):
    """Both modes for one dataset: 'given' (the same initial centers for every tool: the iterations
    alone, and the same number of them if the tools agree) and 'own' (each tool's own greedy
    k-means++ with seeds 0..repeats-1: what a user gets, initialization included)."""
    rows = []
    tools = ["kseg"] + args.peers
    for mode in ("given", "own"):
        runs = {tool: [] for tool in tools}
        for repeat in range(args.repeats):
            seed = repeat if mode == "own" else 0
            for tool in tools:
                if tool == "kseg":
                    run = measure_kseg(args.kseg, data_path, k, mode, seed, args.threads, scratch_dir)
                else:
                    run = measure_peer(tool, data_path, k, mode, seed, args.threads, scratch_dir)
                run["inertia64"] = fixed_work.float64_inertia(data_path, run.pop("centers"))
                runs[tool].append(run)
            fixed_work.log(f"  {name} {mode} repeat {repeat + 1}/{args.repeats}: " + ", ".join(
                f"{tool} {runs[tool][-1]['fit_seconds']:.3f}s ({runs[tool][-1]['n_iter']} it)" for tool in tools))
        row = {"data": name, "mode": mode, "k": k}
        for tool in tools:
            row[f"{tool}_fit_s"] = statistics.median(run["fit_seconds"] for run in runs[tool])
            row[f"{tool}_n_iter"] = statistics.median(run["n_iter"] for run in runs[tool])
            row[f"{tool}_inertia64"] = statistics.median(run["inertia64"] for run in runs[tool])
            row[f"{tool}_peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs[tool])
        row["kseg_algorithm"] = runs["kseg"][0]["algorithm"]
        if args.peers:
            best = min(args.peers, key=lambda tool: row[f"{tool}_fit_s"])
            row["best_peer"] = best
            row["best_peer_over_kseg"] = row[f"{best}_fit_s"] / row["kseg_fit_s"]
        rows.append(row)
    return rows


def markdown_report(rows, machine, args, command_line, sizes):
    tools = ["kseg"] + args.peers
    lines = [
        "## Time to convergence: kseg --algorithm auto vs scikit-learn",
        "",
        f"Command: `{command_line}`",
        "",
        f"Machine: {machine['cpu']} (AVX-512: {machine.get('avx512', '?')}), {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB; {machine['kseg']} (tree {machine['kseg_tree']}, binary built "
        f"{machine['kseg_binary_built']}); scikit-learn {machine['scikit-learn']}, numpy {machine['numpy']}, "
        f"Python {machine['python']}; {machine['date']}. Load average before: {machine['load_before']}, "
        f"after: {machine['load_after']}.",
        "",
        f"tol {TOLERANCE:g} (both tools: relative to the mean feature variance), max_iter {MAX_ITER}, n_init 1, "
        f"{args.threads} threads, float32, medians of {args.repeats} repeats. *given*: the same k random rows "
        "as initial centers for every tool; *own*: each tool's greedy k-means++ (seeds 0.."
        f"{args.repeats - 1}). Fit seconds exclude loading the file. Data: " + "; ".join(sizes) + ".",
        "",
        "| data | k | init | " + " | ".join(f"{TOOL_LABELS[t]} fit s (iterations)" for t in tools)
        + " | best scikit-learn ÷ kseg | " + " | ".join(f"{TOOL_LABELS[t]} inertia" for t in tools)
        + " | " + " | ".join(f"{TOOL_LABELS[t]} RSS MiB" for t in tools) + " |",
        "|---|---:|---|" + "---:|" * len(tools) + "---:|" + "---:|" * (2 * len(tools)),
    ]
    for row in rows:
        cells = [row["data"], str(row["k"]), row["mode"]]
        cells += [f"{row[f'{t}_fit_s']:.3f} ({row[f'{t}_n_iter']:g})" for t in tools]
        cells.append(f"{row['best_peer_over_kseg']:.2f} ({TOOL_LABELS[row['best_peer']]})" if args.peers else "–")
        cells += [f"{row[f'{t}_inertia64']:.6e}" for t in tools]
        cells += [f"{row[f'{t}_peak_rss_mib']:.0f}" for t in tools]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "kseg's `auto` ran: " + ", ".join(f"{row['data']} {row['mode']}: {row['kseg_algorithm']}"
                                                 for row in rows) + "."]
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        tool, data_path, k, mode, seed, threads, centers_out = sys.argv[2:9]
        peer_worker(tool, data_path, int(k), mode, int(seed), int(threads), centers_out)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=float, default=1e7,
                        help="rows of the customer-like data (default 1e7; 0 skips it)")
    parser.add_argument("--customer-k", type=int, default=8, help="k on the customer-like data (default 8)")
    parser.add_argument("--birch1", type=Path, default=DEFAULT_BIRCH1,
                        help=f"the Birch1 text file (default {DEFAULT_BIRCH1}; a missing file skips it)")
    parser.add_argument("--birch1-k", type=int, default=100, help="k on Birch1 (default 100, its ground truth)")
    parser.add_argument("--repeats", type=int, default=3, help="fits per tool and mode (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every tool (default 2)")
    parser.add_argument("--tools", default="kseg,sklearn,sklearn_elkan",
                        help="comma-separated subset of kseg,sklearn,sklearn_elkan (kseg is always measured)")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "bench" / "out" / "convergence",
                        help="scratch data and results (default bench/out/convergence)")
    parser.add_argument("--kseg", type=Path, default=REPO_ROOT / "build" / "release" / "kseg",
                        help="kseg binary (default build/release/kseg)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not os.access(args.kseg, os.X_OK):
        parser.error(f"{args.kseg} is not an executable kseg; build it (see bench/README.md)")
    requested = [t.strip() for t in args.tools.split(",") if t.strip() and t.strip() != "kseg"]
    unknown = [t for t in requested if t not in PEERS]
    if unknown:
        parser.error(f"unknown tools {unknown}; choose from kseg,{','.join(PEERS)}")
    args.peers, missing = fixed_work.installed_peers(requested)
    for tool in missing:
        fixed_work.log(f"note: {PEERS[tool]} is not installed (bash bench/setup.sh); it is left out")
    args.kseg = args.kseg.resolve()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    scratch_dir = args.out_dir.resolve()
    command_line = shlex.join([os.path.relpath(sys.executable, Path.cwd()), os.path.relpath(__file__, Path.cwd())]
                              + sys.argv[1:])
    machine = fixed_work.machine_description(args.kseg)

    datasets, sizes = [], []
    if args.customers > 0:
        n = int(args.customers)
        fixed_work.log(f"generating the customer-like data, n = {n}")
        features = fixed_work.generate_customer_features(args.kseg, n, scratch_dir)
        path = scratch_dir / f"customers_n{n}.h5"
        write_inputs(path, features, args.customer_k, fixed_work.CENTERS_SEED)
        datasets.append((f"customers {n:.0e}".replace("e+0", "e"), path, args.customer_k))
        sizes.append(f"customers: `kseg generate customers --n {n} --seed 1`, 9 features, log1p on the skewed "
                     "columns, standardized (bench/kmeans_fixed_work.py prepare_customer_features)")
        del features
    if args.birch1.is_file():
        path = scratch_dir / "birch1.h5"
        write_inputs(path, load_birch1(args.birch1), args.birch1_k, fixed_work.CENTERS_SEED)
        datasets.append(("Birch1", path, args.birch1_k))
        sizes.append("Birch1: Fränti's birch1.txt, 100,000 x 2")
    else:
        fixed_work.log(f"note: {args.birch1} not found; Birch1 is skipped")
    if not datasets:
        parser.error("no data: --customers 0 and no Birch1 file")

    rows = []
    for name, path, k in datasets:
        rows += benchmark_dataset(name, path, k, args, scratch_dir)
        path.unlink()
    machine["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()
    report = markdown_report(rows, machine, args, command_line, sizes)
    (scratch_dir / "kmeans_convergence.md").write_text(report)
    fixed_work.write_csv(scratch_dir / "kmeans_convergence.csv", rows)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
