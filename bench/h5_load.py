#!/usr/bin/env python3
"""HDF5 load benchmark: kseg's matrix reader against h5py's dset[...] on the same files, a float32
matrix stored contiguous, gzip-chunked and shuffle+gzip-chunked (see bench/README.md for the method).
kseg's load time is the load_seconds that `kseg cluster --log-json` reports (kseg_h5_read_table
alone: open, read, decompress, finiteness check); h5py's is open + dset[...] into a new numpy array."""

import argparse
import json
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
FEATURES_PATH = "/customers/features"
DATA_SEED = 20261124
MIB = 1024.0 * 1024.0
LAYOUTS = {
    # name: h5py create_dataset keyword arguments (chunks of 16384 x 16 float32 = 1 MiB)
    "contiguous": {},
    "gzip": {"chunks": True, "compression": "gzip", "compression_opts": 4},
    "gzip+shuffle": {"chunks": True, "compression": "gzip", "compression_opts": 4,
                     "shuffle": True},
}


def write_files(rows, cols, chunk_rows, out_dir, reuse):
    """Writes one file per layout from the same numpy data: customer-like features (a few
    distributions, values rounded to what real features hold) so that gzip has something to do.
    With reuse, files already there (from an earlier --keep run of the same size) are kept."""
    paths = {name: out_dir / f"h5_load_{name.replace('+', '_')}.h5" for name in LAYOUTS}
    if reuse and all(path.exists() for path in paths.values()):
        return paths
    rng = np.random.default_rng(DATA_SEED)
    data = np.empty((rows, cols), dtype=np.float32)
    block = 1 << 20
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        part = np.empty((stop - start, cols), dtype=np.float32)
        for j in range(cols):
            if j % 4 == 0:
                part[:, j] = rng.exponential(30.0, stop - start).round(0)    # days, counts
            elif j % 4 == 1:
                part[:, j] = rng.poisson(4.0, stop - start)
            elif j % 4 == 2:
                part[:, j] = rng.lognormal(3.0, 1.0, stop - start).round(2)  # money
            else:
                part[:, j] = rng.standard_normal(stop - start)               # scaled, full bits
        data[start:stop] = part
    for name, keywords in LAYOUTS.items():
        path = paths[name]
        keywords = dict(keywords)
        if keywords.get("chunks"):
            keywords["chunks"] = (min(chunk_rows, rows), cols)
        with h5py.File(path, "w") as f:
            f.create_dataset(FEATURES_PATH, data=data, **keywords)
    return paths


def warm(path):
    """Reads the whole file once so that every timed load comes from the page cache."""
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def time_h5py(path):
    started = time.perf_counter()
    with h5py.File(path, "r") as f:
        values = f[FEATURES_PATH][...]
    seconds = time.perf_counter() - started
    del values
    return seconds


def time_kseg(kseg, path, threads, scratch):
    """One `kseg cluster` run (k 2, one iteration); returns its load_seconds and peak RSS (MiB)."""
    log = scratch / "log.jsonl"
    if log.exists():
        log.unlink()
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    command = ["/usr/bin/time", "-f", "%M", kseg, "cluster", f"{path}:{FEATURES_PATH}", "-k", "2",
               "--max-iter", "1", "--init", "random", "--n-init", "1", "--threads", str(threads),
               "-o", str(scratch / "result.h5"), "--log-json", str(log), "--quiet"]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True)
    if finished.returncode != 0:
        sys.exit(f"h5_load: kseg failed: {finished.stderr.strip()}")
    done = [json.loads(line) for line in log.read_text().splitlines() if '"done"' in line][-1]
    peak_mib = int(finished.stderr.strip().splitlines()[-1]) / 1024.0
    return done["load_seconds"], peak_mib


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=float, default=1e7)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--chunk-rows", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2", help="kseg thread counts, e.g. 1,2")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--kseg", default=str(REPO_ROOT / "build/release/kseg"))
    parser.add_argument("--out-dir", default=None,
                        help="where the data files go (default: a new directory under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the data files")
    parser.add_argument("--reuse", action="store_true",
                        help="use the data files an earlier --keep run left in --out-dir")
    parser.add_argument("--generate-only", action="store_true",
                        help="write the data files and stop (with --keep, for a later --reuse)")
    args = parser.parse_args()
    rows = int(args.rows)
    threads = [int(t) for t in args.threads.split(",")]
    layouts = args.layouts.split(",")
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="kseg_h5_load_"))
    out_dir.mkdir(parents=True, exist_ok=True)

    print(f"# HDF5 load: {rows} x {args.cols} float32 ({rows * args.cols * 4 / MIB:.0f} MiB), "
          f"{args.repeats} repeats, medians; page cache warm", flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}", flush=True)
    paths = write_files(rows, args.cols, args.chunk_rows, out_dir, args.reuse)
    if args.generate_only:
        return
    print("load average before: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    results = []
    for name in layouts:
        path = paths[name]
        warm(path)
        time_h5py(path)  # also warms h5py's own imports and HDF5's first open
        h5py_seconds = []
        kseg_seconds = {t: [] for t in threads}
        kseg_peak = {t: 0.0 for t in threads}
        # Alternate the tools within each repeat so that a noisy neighbour hits them alike.
        for _ in range(args.repeats):
            h5py_seconds.append(time_h5py(path))
            for t in threads:
                seconds, peak = time_kseg(args.kseg, path, t, out_dir)
                kseg_seconds[t].append(seconds)
                kseg_peak[t] = max(kseg_peak[t], peak)
        h5py_median = statistics.median(h5py_seconds)
        row = {"layout": name, "file_mib": path.stat().st_size / MIB, "h5py": h5py_median}
        for t in threads:
            row[f"kseg_{t}"] = statistics.median(kseg_seconds[t])
            row[f"peak_{t}"] = kseg_peak[t]
        results.append(row)
        print(f"{name}: h5py {h5py_seconds}, kseg {kseg_seconds}", flush=True)

    print("load average after: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    header = "| layout | file MiB | h5py s | " + " | ".join(
        f"kseg {t}T s | h5py/kseg {t}T | kseg {t}T peak RSS MiB" for t in threads) + " |"
    print()
    print(header)
    print("|" + "---|" * (3 + 3 * len(threads)))
    for row in results:
        cells = [row["layout"], f"{row['file_mib']:.0f}", f"{row['h5py']:.3f}"]
        for t in threads:
            cells += [f"{row[f'kseg_{t}']:.3f}", f"{row['h5py'] / row[f'kseg_{t}']:.2f}",
                      f"{row[f'peak_{t}']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    if not args.keep:
        for path in paths.values():
            path.unlink()
        for leftover in ("log.jsonl", "result.h5"):
            (out_dir / leftover).unlink(missing_ok=True)
        if not any(out_dir.iterdir()):
            out_dir.rmdir()


if __name__ == "__main__":
    main()
