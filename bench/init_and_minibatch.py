#!/usr/bin/env python3
"""Initialization and mini-batch benchmark (issue 5): kseg's k-means++ and k-means|| against
scikit-learn's kmeans_plusplus (time to the initial centers), k-means|| against k-means++ in
quality (initial and converged inertia over several seeds), and kseg's mini-batch k-means against
full Lloyd and scikit-learn's MiniBatchKMeans (time and the full-data inertia reached). Same data
for every tool in the same run, repeats, medians, ratios, peak RSS (see bench/README.md)."""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
FEATURES = "/customers/features"
MIB = 1024.0 * 1024.0
INIT_CONFIGS = ((1_000_000, 16, 64), (10_000_000, 8, 8))


def run_measured(command, env=None):
    """Runs command; returns (stdout, stderr), raising on a non-zero exit."""
    process = subprocess.run(command, capture_output=True, text=True, env=env)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({process.returncode}): "
                           f"{process.stderr}")
    return process.stdout, process.stderr


def timed_command(command, env=None):
    """Runs command under /usr/bin/time -f %M (the child's own peak RSS) when present; returns
    (stdout, stderr, peak MiB)."""
    timer = "/usr/bin/time"
    if os.path.exists(timer):
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
            stdout, stderr = run_measured([timer, "-f", "%M", "-o", rss.name, *command], env=env)
            text = open(rss.name).read().strip().splitlines()
            peak = float(text[-1]) / 1024.0 if text else float("nan")
        return stdout, stderr, peak
    stdout, stderr = run_measured(command, env=env)
    return stdout, stderr, float("nan")


def thread_env(threads):
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def kseg_cluster(kseg, data, k, threads, log_dir, extra):
    """One `kseg cluster` run; returns the done event, the first iteration's objective (the
    inertia of the initial centers for Lloyd) and the peak RSS."""
    log = Path(log_dir) / "log.jsonl"
    out = Path(log_dir) / "out.h5"
    if log.exists():
        log.unlink()
    command = [kseg, "cluster", str(data), "-k", str(k), "-o", str(out), "--threads",
               str(threads), "--log-json", str(log), "-q", *map(str, extra)]
    _, _, peak = timed_command(command, env=thread_env(threads))
    events = [json.loads(line) for line in open(log)]
    done = [e for e in events if e["event"] == "done"][-1]
    first = next(e for e in events if e["event"] == "iteration")
    with h5py.File(out, "r") as f:
        done["convergence"] = str(f["/model/centroids"].attrs["convergence"])
    return done, first["objective"], peak


SKLEARN_INIT = r"""
import json, math, sys, time
import h5py, numpy as np
from threadpoolctl import threadpool_limits
from sklearn.cluster import kmeans_plusplus
path, k, seed, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = h5py.File(path, "r")["/customers/features"][:]
with threadpool_limits(threads):
    started = time.perf_counter()
    centers, _ = kmeans_plusplus(x, k, n_local_trials=2 + int(math.log(k)), random_state=seed)
    seconds = time.perf_counter() - started
inertia = 0.0
c = centers.astype(np.float64)
for begin in range(0, len(x), 1 << 18):
    chunk = x[begin:begin + (1 << 18)].astype(np.float64)
    inertia += float((((chunk[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)).min(axis=1).sum())
print(json.dumps({"seconds": seconds, "inertia": inertia}))
"""

SKLEARN_MINIBATCH = r"""
import json, sys, time
import h5py, numpy as np
from threadpoolctl import threadpool_limits
from sklearn.cluster import MiniBatchKMeans
path, k, seed, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = h5py.File(path, "r")["/customers/features"][:]
with threadpool_limits(threads):
    started = time.perf_counter()
    model = MiniBatchKMeans(n_clusters=k, batch_size=1024, n_init=1, max_no_improvement=10,
                            random_state=seed).fit(x)
    seconds = time.perf_counter() - started
inertia = 0.0
c = model.cluster_centers_.astype(np.float64)
for begin in range(0, len(x), 1 << 18):
    chunk = x[begin:begin + (1 << 18)].astype(np.float64)
    inertia += float((((chunk[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)).min(axis=1).sum())
print(json.dumps({"seconds": seconds, "inertia": inertia, "n_steps": int(model.n_steps_)}))
"""


def python_peer(script, data, k, seed, threads):
    stdout, _, peak = timed_command([sys.executable, "-c", script, str(data), str(k), str(seed),
                                     str(threads)], env=thread_env(threads))
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_mib"] = peak
    return result


def median(values):
    return statistics.median(values) if values else float("nan")


def generate_blobs(kseg, path, n, d, k, seed=1):
    subprocess.run([kseg, "generate", "blobs", "--n", str(n), "--d", str(d), "--k", str(k),
                    "--seed", str(seed), "-o", str(path)], check=True, capture_output=True)


def generate_customers(kseg, path, n, seed=1):
    """`kseg generate customers`, then z-scored per column (what `kseg prepare` would do): raw,
    income and monetary dominate every distance."""
    raw = Path(str(path) + ".raw.h5")
    subprocess.run([kseg, "generate", "customers", "--n", str(n), "--seed", str(seed), "-o",
                    str(raw)], check=True, capture_output=True)
    with h5py.File(raw, "r") as f:
        x = f[FEATURES][:].astype(np.float64)
    raw.unlink()
    x = ((x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset(FEATURES, data=x)


def load_birch1(path):
    source = REPO_ROOT.parent / "shared" / "datasets" / "franti" / "birch1.txt"
    if not source.exists():
        source = Path("/work/shared/datasets/franti/birch1.txt")
    x = np.loadtxt(source, dtype=np.float64)
    with h5py.File(path, "w") as f:
        f.create_dataset(FEATURES, data=x)
    return x.shape


def part_init(args, out, lines):
    lines += ["### Initialization time: kseg k-means++ / k-means|| vs scikit-learn kmeans_plusplus",
              "",
              f"float32 blobs (`kseg generate blobs`), {args.threads} threads, "
              f"{args.repeats} repeats (medians); same n_local_trials = 2 + floor(ln k); kseg's "
              "time is `init_seconds` of its JSON log, scikit-learn's the kmeans_plusplus call "
              "alone (data already in memory); initial inertia in float64.", "",
              "| n | d | k | kseg k-means++ s | kseg k-means\\|\\| s | sklearn kmeans_plusplus s | "
              "sklearn / kseg++ | sklearn / kseg\\|\\| | init inertia ++ / sklearn | "
              "init inertia \\|\\| / ++ | peak RSS kseg / sklearn MiB |" +
              (" kseg++ before this branch s (fit with --max-iter 1 if it logs no init_seconds) |" if args.kseg_baseline else ""),
              "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if args.kseg_baseline
                                                                 else "")]
    for n, d, k in args.init_configs:
        data = out / f"init_{n}_{d}_{k}.h5"
        generate_blobs(args.kseg, data, n, d, k)
        plus, parallel, peer, baseline = [], [], [], []
        for repeat in range(args.repeats):
            if args.kseg_baseline:
                done, _, _ = kseg_cluster(args.kseg_baseline, data, k, args.threads, out,
                                          ["--max-iter", 1, "--seed", repeat])
                # An older binary may not log init_seconds: its fit with one iteration is the
                # init plus two cheap assignment passes.
                baseline.append(done.get("init_seconds", done["fit_seconds"]))
            for method, sink in (("k-means++", plus), ("k-means||", parallel)):
                done, initial, peak = kseg_cluster(args.kseg, data, k, args.threads, out,
                                                   ["--init", method, "--max-iter", 1,
                                                    "--seed", repeat])
                sink.append((done["init_seconds"], initial, peak))
            result = python_peer(SKLEARN_INIT, data, k, repeat, args.threads)
            peer.append((result["seconds"], result["inertia"], result["peak_mib"]))
            print(f"  init {n},{d},{k} repeat {repeat}: ++ {plus[-1][0]:.3f}s || "
                  f"{parallel[-1][0]:.3f}s sklearn {peer[-1][0]:.3f}s", flush=True)
        t_plus, t_par, t_peer = (median([r[0] for r in s]) for s in (plus, parallel, peer))
        i_plus, i_par, i_peer = (median([r[1] for r in s]) for s in (plus, parallel, peer))
        lines.append(f"| {n:.0e} | {d} | {k} | {t_plus:.3f} | {t_par:.3f} | {t_peer:.3f} | "
                     f"{t_peer / t_plus:.2f}× | {t_peer / t_par:.2f}× | {i_plus / i_peer:.3f} | "
                     f"{i_par / i_plus:.3f} | {median([r[2] for r in plus]):.0f} / "
                     f"{median([r[2] for r in peer]):.0f} |")
        if baseline:
            lines[-1] += f" {median(baseline):.3f} |"
        data.unlink()
    lines.append("")


def part_quality(args, out, lines):
    lines += ["### k-means|| vs k-means++: quality and time (kseg, Lloyd to convergence)", "",
              f"Seeds 0..{args.seeds - 1}, {args.threads} threads, default tol (1e-4). Ratios "
              "are k-means|| / k-means++ of the per-seed medians; init inertia is the first "
              "iteration's objective (the inertia of the initial centers).", "",
              "| data | n | d | k | init inertia ++ | init inertia \\|\\| | ratio | final inertia ++ "
              "| final inertia \\|\\| | ratio | worst-seed final ratio | init s ++ / \\|\\| | "
              "fit s ++ / \\|\\| | iterations ++ / \\|\\| |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    sets = []
    blobs = out / "quality_blobs.h5"
    generate_blobs(args.kseg, blobs, 1_000_000, 8, 32, seed=5)
    sets.append(("blobs", blobs, 1_000_000, 8, 32))
    customers = out / "quality_customers.h5"
    generate_customers(args.kseg, customers, 1_000_000)
    sets.append(("customers (z-scored)", customers, 1_000_000, 9, 8))
    birch = out / "quality_birch1.h5"
    shape = load_birch1(birch)
    sets.append(("Fränti Birch1", birch, shape[0], shape[1], 100))
    for name, data, n, d, k in sets:
        rows = {}
        for method in ("k-means++", "k-means||"):
            rows[method] = []
            for seed in range(args.seeds):
                done, initial, _ = kseg_cluster(args.kseg, data, k, args.threads, out,
                                                ["--init", method, "--seed", seed])
                rows[method].append((initial, done["inertia"], done["init_seconds"],
                                     done["fit_seconds"], done["n_iter"]))
            print(f"  quality {name} {method}: final {median([r[1] for r in rows[method]]):.6g}",
                  flush=True)
        plus, par = rows["k-means++"], rows["k-means||"]
        med = lambda rs, i: median([r[i] for r in rs])  # noqa: E731
        worst = max(b[1] / a[1] for a, b in zip(plus, par))
        lines.append(f"| {name} | {n:.0e} | {d} | {k} | {med(plus, 0):.5g} | {med(par, 0):.5g} | "
                     f"{med(par, 0) / med(plus, 0):.3f} | {med(plus, 1):.6g} | "
                     f"{med(par, 1):.6g} | {med(par, 1) / med(plus, 1):.4f} | {worst:.4f} | "
                     f"{med(plus, 2):.3f} / {med(par, 2):.3f} | {med(plus, 3):.3f} / "
                     f"{med(par, 3):.3f} | {med(plus, 4):.0f} / {med(par, 4):.0f} |")
        data.unlink()
    lines.append("")


def part_minibatch(args, out, lines):
    n, k = args.minibatch_n, 8
    data = out / "minibatch_customers.h5"
    generate_customers(args.kseg, data, n)
    lines += [f"### Mini-batch vs full Lloyd (kseg) and scikit-learn MiniBatchKMeans", "",
              f"`kseg generate customers --n {n:.0e}` z-scored (d = 9), float32, k = {k}, "
              f"{args.threads} threads, seeds 0..{args.minibatch_seeds - 1} (medians). Every inertia is of "
              "the full data in float64 (kseg's own final pass; scikit-learn's centers "
              "re-evaluated). Both mini-batches: batch 1024, max_no_improvement 10, k-means++ "
              "init (scikit-learn on its init_size sample of 3072 rows, kseg on all rows). "
              "Gap = inertia / kseg Lloyd's - 1.", "",
              "| tool | fit s | of which init s | final inertia | gap to Lloyd | epochs or steps "
              "| peak RSS MiB |",
              "|---|---|---|---|---|---|---|"]
    runs = {}
    for seed in range(args.minibatch_seeds):
        for label, extra in (("kseg lloyd (k-means++)", []),
                             ("kseg minibatch (k-means++)", ["--algorithm", "minibatch"]),
                             ("kseg minibatch (k-means||)", ["--algorithm", "minibatch",
                                                             "--init", "k-means||"])):
            done, _, peak = kseg_cluster(args.kseg, data, k, args.threads, out,
                                         ["--seed", seed, *extra])
            runs.setdefault(label, []).append((done["fit_seconds"], done["init_seconds"],
                                               done["inertia"], done["n_iter"], peak))
        result = python_peer(SKLEARN_MINIBATCH, data, k, seed, args.threads)
        runs.setdefault("scikit-learn MiniBatchKMeans", []).append(
            (result["seconds"], float("nan"), result["inertia"], result["n_steps"],
             result["peak_mib"]))
        print(f"  minibatch seed {seed}: " + ", ".join(
            f"{label} {r[-1][0]:.2f}s {r[-1][2]:.6g}" for label, r in runs.items()), flush=True)
    lloyd = median([r[2] for r in runs["kseg lloyd (k-means++)"]])
    for label, rs in runs.items():
        init = median([r[1] for r in rs])
        lines.append(f"| {label} | {median([r[0] for r in rs]):.3f} | "
                     f"{'—' if math.isnan(init) else f'{init:.3f}'} | "
                     f"{median([r[2] for r in rs]):.7g} | "
                     f"{median([r[2] for r in rs]) / lloyd - 1:+.3%} | "
                     f"{median([r[3] for r in rs]):.0f} | {median([r[4] for r in rs]):.0f} |")
    data.unlink()
    lines.append("")


def parse_configs(text):
    return [tuple(int(float(p)) for p in item.split(",")) for item in text.split(";") if item]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", default="init,quality,minibatch")
    parser.add_argument("--init-configs", type=parse_configs,
                        default=list(INIT_CONFIGS), help='"n,d,k;n,d,k"')
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--minibatch-n", type=int, default=10_000_000)
    parser.add_argument("--minibatch-seeds", type=int, default=3)
    parser.add_argument("--kseg-baseline", default=None,
                        help="an older kseg binary whose k-means++ init time is shown beside")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "bench" / "out")
    parser.add_argument("--kseg", default=str(REPO_ROOT / "build" / "release" / "kseg"))
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    lines = [f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
             f"{platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}), "
             f"load average at start {' '.join(load)}; command: "
             f"`{' '.join([Path(sys.executable).name, *sys.argv])}`", ""]
    parts = args.parts.split(",")
    if "init" in parts:
        part_init(args, args.out_dir, lines)
    if "quality" in parts:
        part_quality(args, args.out_dir, lines)
    if "minibatch" in parts:
        part_minibatch(args, args.out_dir, lines)
    text = "\n".join(lines)
    (args.out_dir / "init_and_minibatch.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
