#!/usr/bin/env python3
"""A/B timing of `kseg rfm` builds: runs two or more kseg binaries (or one binary under different
environments) in turns on the same transaction file, and reports the medians of the times each
prints (read and aggregate, score, write) and of its peak RSS.

The turns interleave the variants inside every repeat, so that drift in the load of a shared
machine spreads over all of them; compare medians from one run of this script only.

    .venv/bin/python bench/rfm_ab.py TX.h5 old=/tmp/kseg_old new=build/release/kseg --repeats 9
    .venv/bin/python bench/rfm_ab.py TX.h5 plain=build/release/kseg \\
        passive=build/release/kseg:OMP_WAIT_POLICY=passive --threads 2

A variant is NAME=BINARY[:VAR=VALUE[:VAR=VALUE...]]; extra arguments after `--` go to every
`kseg rfm` (for example `-- --frequency days`)."""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TIMING = re.compile(r"read and aggregate ([0-9.]+) s(?: \([^)]*\))?, score ([0-9.]+) s, write ([0-9.]+) s")


def parse_variant(text):
    name, _, rest = text.partition("=")
    if not name or not rest:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=BINARY[:VAR=VALUE...]")
    binary, *settings = rest.split(":")
    env = {}
    for setting in settings:
        variable, equals, value = setting.partition("=")
        if not variable or not equals:
            raise argparse.ArgumentTypeError(f"{setting!r} in {text!r}: expected VAR=VALUE")
        env[variable] = value
    return name, binary, env


def run_once(binary, env, tx, output, threads, extra):
    command = ["/usr/bin/time", "-f", "%M", "-o", output + ".rss", binary, "rfm", tx, "-o", output,
               "--threads", str(threads)] + extra
    completed = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr.strip()}")
    match = TIMING.search(completed.stdout)
    if not match:
        sys.exit(f"{binary}: no timing line in its summary")
    rss_kib = int(Path(output + ".rss").read_text().strip().splitlines()[-1])
    aggregate, score, write = (float(match.group(k)) for k in (1, 2, 3))
    return {"aggregate": aggregate, "score": score, "compute": aggregate + score, "write": write,
            "rss_mib": rss_kib / 1024.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("transactions", help="transaction file (kseg generate transactions)")
    parser.add_argument("variants", nargs="+", type=parse_variant, help="NAME=BINARY[:VAR=VALUE...]")
    parser.add_argument("--repeats", type=int, default=9, help="turns per variant (default 9)")
    parser.add_argument("--threads", type=int, default=2, help="--threads for every run (default 2)")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    extra = argv[split + 1:]
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    results = {name: [] for name, _, _ in args.variants}
    with tempfile.TemporaryDirectory(prefix="kseg_rfm_ab.") as scratch:
        for _ in range(args.repeats):
            for name, binary, env in args.variants:
                output = os.path.join(scratch, f"{name}.h5")
                results[name].append(run_once(binary, env, args.transactions, output, args.threads,
                                              extra))
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"kseg rfm {args.transactions} --threads {args.threads} {' '.join(extra)}".rstrip())
    print(f"medians of {args.repeats} interleaved runs; load average after: {load}\n")
    print("| variant | read and aggregate s | score s | compute s | min compute s | write s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, runs in results.items():
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"| {name} | {median['aggregate']:.3f} | {median['score']:.3f} | {median['compute']:.3f} | "
              f"{min(run['compute'] for run in runs):.3f} | {median['write']:.3f} | {median['rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
