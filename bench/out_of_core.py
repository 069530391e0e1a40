#!/usr/bin/env python3
"""Out-of-core k-means: one float32 dataset of about 1 GiB fitted in memory, with --memory-limit
mapped from a contiguous file, and staged from a gzip-chunked copy; 3 repeats each, reporting the
median seconds per iteration (from /model/iterations/seconds), the load time, and the peak resident
memory split into anonymous (process) and file-backed (mapped page cache) pages, polled from
/proc/PID/status, as a markdown table. Every run's centroids and labels are checked bitwise equal
to the in-memory run's.

    bench/out_of_core.py --kseg build/release/kseg [--rows 16e6] [--cols 16] [--k 16]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_data(directory, rows, cols, k, seed=1):
    """Blobs around k centers, written block by block (no full copy in memory): contiguous and
    gzip-1 chunks of 65536 rows."""
    contiguous, gzip = directory / "contiguous.h5", directory / "gzip.h5"
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5.0, size=(k, cols)).astype(np.float32)
    with h5py.File(contiguous, "w") as plain, h5py.File(gzip, "w") as packed:
        a = plain.create_dataset("/customers/features", (rows, cols), np.float32)
        b = packed.create_dataset("/customers/features", (rows, cols), np.float32,
                                  chunks=(65536, cols), compression="gzip", compression_opts=1)
        block = 1 << 20
        for start in range(0, rows, block):
            count = min(block, rows - start)
            values = centers[rng.integers(0, k, count)] + rng.standard_normal(
                (count, cols), dtype=np.float32)
            a[start:start + count] = values
            b[start:start + count] = values
    return contiguous, gzip


def run(kseg, data, out, extra, k, iterations, threads):
    """Runs one fit and polls its memory every 20 ms; returns (seconds per iteration (median),
    load seconds, peak anonymous RSS, peak file-backed RSS, rows_mode, result bytes)."""
    log = out.with_suffix(".jsonl")
    if log.exists():
        log.unlink()
    command = [kseg, "cluster", str(data), "-k", str(k), "--seed", "7", "--max-iter",
               str(iterations), "--tol", "0", "--threads", str(threads), "-o", str(out),
               "--log-json", str(log), "--quiet", *extra]
    process = subprocess.Popen(command)
    peak_anon = peak_file = 0
    while process.poll() is None:
        try:
            fields = dict(line.split(":", 1) for line in
                          open(f"/proc/{process.pid}/status").read().splitlines() if ":" in line)
            peak_anon = max(peak_anon, int(fields.get("RssAnon", "0 kB").split()[0]) * 1024)
            peak_file = max(peak_file, int(fields.get("RssFile", "0 kB").split()[0]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    if process.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}")
    done = [json.loads(line) for line in open(log)][-1]
    with h5py.File(out, "r") as f:
        seconds = f["/model/iterations/seconds"][:]
        result = f["/model/centroids"][:].tobytes() + f["/labels/cluster"][:].tobytes()
    return (statistics.median(seconds), done["load_seconds"], peak_anon, peak_file,
            done["rows_mode"], result)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kseg", default=str(REPO_ROOT / "build/release/kseg"))
    parser.add_argument("--rows", type=float, default=16e6)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", default="256M")
    parser.add_argument("--directory", help="where the data goes (default: a temporary one)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=arguments.directory) as temporary:
        directory = Path(temporary)
        rows = int(arguments.rows)
        contiguous, gzip = make_data(directory, rows, arguments.cols, arguments.k)
        size = rows * arguments.cols * 4
        modes = [("in memory", contiguous, []),
                 (f"--memory-limit {arguments.limit} (mapped)", contiguous,
                  ["--memory-limit", arguments.limit]),
                 (f"--memory-limit {arguments.limit} (staged from gzip)", gzip,
                  ["--memory-limit", arguments.limit, "--scratch-dir", str(directory)])]
        print(f"{rows} x {arguments.cols} float32 ({size / 2**30:.2f} GiB), k = {arguments.k}, "
              f"{arguments.iterations} iterations, {arguments.threads} threads, "
              f"{arguments.repeats} repeats (medians)\n")
        print("| rows | mode | s / iteration | load s | peak RSS anonymous | peak RSS file-backed |")
        print("|---|---|---|---|---|---|")
        reference = None
        for name, data, extra in modes:
            runs = [run(arguments.kseg, data, directory / "out.h5", extra, arguments.k,
                        arguments.iterations, arguments.threads)
                    for _ in range(arguments.repeats)]
            for r in runs:
                reference = reference or r[5]
                assert r[5] == reference, f"{name}: result differs from the in-memory run"
            print(f"| {runs[0][4]} | {name} | {statistics.median(r[0] for r in runs):.4f} | "
                  f"{statistics.median(r[1] for r in runs):.2f} | "
                  f"{max(r[2] for r in runs) / 2**20:.0f} MiB | "
                  f"{max(r[3] for r in runs) / 2**20:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
