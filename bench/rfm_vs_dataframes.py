#!/usr/bin/env python3
"""RFM benchmark (issue 3): `kseg rfm` against pandas, DuckDB and Polars computing the same default
RFM table from the same generated transactions, with aggregation and scoring timed separately, peak
RSS per tool, and every peer's per-customer features checked against kseg's output (bench/README.md)."""

import argparse
import csv
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
# The same peak-RSS measurement as the k-means benchmark (GNU time, or a one-child Python wrapper),
# so that the numbers of both benchmarks mean the same thing.
from kmeans_fixed_work import run_with_peak_rss  # noqa: E402

DAY = 86400
BINS = 5
PEERS = ("pandas", "duckdb", "polars")
TOOLS = ("kseg",) + PEERS
# The columns the default RFM needs: returns are cancelled == 1 or amount < 0 (the generator marks
# every negative-quantity line cancelled, so the quantity column adds nothing here and is not read).
COLUMNS = ("customer_id", "time", "amount", "invoice", "cancelled")
# The Python package behind each peer, for the versions in the report and the "not installed" check.
PEER_PACKAGES = {"pandas": ["pandas"], "duckdb": ["duckdb", "pyarrow"], "polars": ["polars"]}
KSEG_TIMING = re.compile(r"time: read and aggregate ([0-9.]+) s, score ([0-9.]+) s(?:, write ([0-9.]+) s)?")
# Monetary sums may differ in the last bits between tools: pandas sums groups with Kahan
# compensation, DuckDB and Polars in an order of their own, kseg plainly in row order. Anything
# beyond this relative difference would be a different set of rows, not rounding.
MONETARY_RTOL = 1e-9
MIB = 1024.0 * 1024.0


# ----------------------------------------------------------------------------------------------
# The peers' RFM, run inside a worker process


# The scores. pandas scores a feature as qcut(rank(method="first"), B, labels=False) + 1 on customers
# ordered by id: ranks r = 1..n, cut points at the linear quantiles 1 + (n - 1) j / B, right-closed
# bins, so score = 1 + #{j in 1..B-1 : 1 + (n - 1) j / B < r}. In integers that count is
# clamp(ceil(B (r - 1) / (n - 1)) - 1, 0, B - 1) = clamp((B (r - 1) + n - 2) // (n - 1) - 1, 0, B - 1),
# which the DuckDB and Polars workers evaluate ("qcut_rank"). SQL's NTILE(B) and Polars' bin_ranks(B)
# would instead give the remainder n mod B to the first bins, which puts some customers one score
# away from pandas (the report counts how many), and Polars 2 deprecates qcut; the integer formula
# gives pandas' scores in both (checked against pandas for every n up to 400 and sizes up to 2e6
# while this driver was written, and against kseg's scores on every run).


def read_columns(tx_path):
    """Reads the five needed columns of /transactions into numpy arrays with h5py, as every peer
    does (kseg reads the file with the HDF5 C library, all of its columns)."""
    with h5py.File(tx_path, "r") as file:
        group = file["transactions"]
        return {name: group[name][...] for name in COLUMNS}


def pandas_worker(columns, threads, bins):
    import pandas as pd

    timings = {}
    started = time.perf_counter()
    # copy=False keeps the numpy arrays as the frame's columns; the frame is what a pandas user has
    # after loading, so building it counts as loading, not as aggregation.
    frame = pd.DataFrame(columns, copy=False)
    timings["load_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    kept = frame[(frame["cancelled"] == 0) & (frame["amount"] >= 0)]
    features = kept.groupby("customer_id", sort=True).agg(
        last=("time", "max"), first=("time", "min"), frequency=("invoice", "nunique"),
        monetary=("amount", "sum"))
    reference = (int(features["last"].max()) // DAY + 1) * DAY
    features["recency"] = (reference - features["last"]) // DAY
    features["tenure"] = (reference - features["first"]) // DAY
    timings["aggregate_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    # The features are ordered by customer id, so rank(method="first") breaks ties by id, as kseg.
    scores = pd.DataFrame(index=features.index)
    for feature, column in (("recency", "r_score"), ("frequency", "f_score"), ("monetary", "m_score")):
        scores[column] = pd.qcut(features[feature].rank(method="first"), bins, labels=False) + 1
    # Fewer days since the last purchase is better, so the recency score is reversed.
    scores["r_score"] = bins + 1 - scores["r_score"]
    timings["score_seconds"] = time.perf_counter() - started

    def result():
        return {"customer_id": features.index.to_numpy(), "recency": features["recency"].to_numpy(),
                "frequency": features["frequency"].to_numpy(), "monetary": features["monetary"].to_numpy(),
                "tenure": features["tenure"].to_numpy(),
                "score": scores[["r_score", "f_score", "m_score"]].to_numpy()}
    return timings, result


def duckdb_worker(columns, threads, bins):
    import duckdb
    import pyarrow

    timings = {}
    connection = duckdb.connect()
    connection.execute(f"SET threads = {int(threads)}")
    started = time.perf_counter()
    # The rows are copied into a native DuckDB table (through a zero-copy Arrow view of the numpy
    # arrays): that is DuckDB's fastest layout, and what a DuckDB user would query.
    connection.register("tx_arrow", pyarrow.table(columns))
    connection.execute("CREATE TABLE tx AS SELECT * FROM tx_arrow")
    connection.unregister("tx_arrow")
    timings["load_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    connection.execute(f"""
        CREATE TABLE features AS
        WITH per_customer AS (
            SELECT customer_id, max(time) AS last, min(time) AS first,
                   count(DISTINCT invoice) AS frequency, sum(amount) AS monetary
            FROM tx WHERE cancelled = 0 AND amount >= 0
            GROUP BY customer_id),
        reference AS (SELECT (max(last) // {DAY} + 1) * {DAY} AS t FROM per_customer)
        SELECT customer_id, (reference.t - last) // {DAY} AS recency, frequency, monetary,
               (reference.t - first) // {DAY} AS tenure
        FROM per_customer, reference""")
    timings["aggregate_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    # qcut_rank is pandas' qcut on rank(method="first") in exact integer arithmetic (see the
    # comment on the scores at the top); row_number() over (value, customer id) is that rank.
    connection.execute("""
        CREATE MACRO qcut_rank(rk, n, b) AS
            1 + greatest(0, least(b - 1, (b * (rk - 1) + n - 2) // (n - 1) - 1))""")
    connection.execute(f"""
        CREATE TABLE scores AS
        SELECT customer_id, recency, frequency, monetary, tenure,
               {bins} + 1 - qcut_rank(row_number() OVER (ORDER BY recency, customer_id), n, {bins}) AS r_score,
               qcut_rank(row_number() OVER (ORDER BY frequency, customer_id), n, {bins}) AS f_score,
               qcut_rank(row_number() OVER (ORDER BY monetary, customer_id), n, {bins}) AS m_score
        FROM features, (SELECT count(*) AS n FROM features) AS total
        ORDER BY customer_id""")
    timings["score_seconds"] = time.perf_counter() - started

    def result():
        table = connection.execute("SELECT * FROM scores ORDER BY customer_id").fetchnumpy()
        return {"customer_id": table["customer_id"], "recency": table["recency"],
                "frequency": table["frequency"], "monetary": table["monetary"], "tenure": table["tenure"],
                "score": np.stack([table["r_score"], table["f_score"], table["m_score"]], axis=1)}
    return timings, result


def polars_worker(columns, threads, bins):
    # POLARS_MAX_THREADS is set in the worker's environment by the driver: Polars reads it once,
    # when it is imported, and it cannot be changed afterwards.
    import polars as pl

    timings = {}
    started = time.perf_counter()
    frame = pl.DataFrame(columns)
    timings["load_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    features = (
        frame.lazy()
        .filter((pl.col("cancelled") == 0) & (pl.col("amount") >= 0))
        .group_by("customer_id")
        .agg(pl.col("time").max().alias("last"), pl.col("time").min().alias("first"),
             pl.col("invoice").n_unique().alias("frequency"), pl.col("amount").sum().alias("monetary"))
        .sort("customer_id")
        .with_columns(((pl.col("last").max() // DAY + 1) * DAY).alias("reference"))
        .select("customer_id", ((pl.col("reference") - pl.col("last")) // DAY).alias("recency"),
                "frequency", "monetary", ((pl.col("reference") - pl.col("first")) // DAY).alias("tenure"))
        .collect())
    timings["aggregate_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    n = features.height

    def qcut_rank(feature):
        # rank("ordinal") on the id-ordered frame breaks ties by customer id, as rank(method="first");
        # the binning is pandas' qcut on that rank in exact integers (see the comment on the scores at the top).
        rank = pl.col(feature).rank("ordinal").cast(pl.Int64)
        return 1 + ((bins * (rank - 1) + n - 2) // (n - 1) - 1).clip(0, bins - 1)

    scores = features.with_columns((bins + 1 - qcut_rank("recency")).alias("r_score"),
                                   qcut_rank("frequency").alias("f_score"),
                                   qcut_rank("monetary").alias("m_score"))
    timings["score_seconds"] = time.perf_counter() - started

    def result():
        return {"customer_id": scores["customer_id"].to_numpy(), "recency": scores["recency"].to_numpy(),
                "frequency": scores["frequency"].to_numpy(), "monetary": scores["monetary"].to_numpy(),
                "tenure": scores["tenure"].to_numpy(),
                "score": scores.select("r_score", "f_score", "m_score").to_numpy()}
    return timings, result


WORKERS = {"pandas": pandas_worker, "duckdb": duckdb_worker, "polars": polars_worker}


def worker_main(tool, tx_path, threads, result_path):
    """Runs one peer once in this fresh process and prints one JSON line of timings. The library is
    imported before the clock starts: import time is start-up, not work on the data."""
    for package in PEER_PACKAGES[tool]:
        __import__(package)
    started = time.perf_counter()
    columns = read_columns(tx_path)
    read_seconds = time.perf_counter() - started
    timings, result = WORKERS[tool](columns, threads, BINS)
    timings["read_seconds"] = read_seconds
    timings["end_to_end_seconds"] = (read_seconds + timings["load_seconds"] + timings["aggregate_seconds"]
                                     + timings["score_seconds"])
    if result_path:
        # Written after the clock stopped: the check needs the table, the measurement does not.
        np.savez(result_path, **result())
    print(json.dumps(timings))


# ----------------------------------------------------------------------------------------------
# The driver


def measured_env(threads):
    """The environment of every measured process: the same thread count for every tool and for
    every thread pool they might use (OpenMP, BLAS, Polars, Arrow), set before anything starts."""
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS"):
        env[variable] = str(threads)
    return env


def kseg_rfm_available(kseg):
    """kseg rfm is new; an older binary answers 'unknown command'. The help text also tells whether
    the command can write a JSON log, which would be preferred over the printed summary."""
    try:
        completed = subprocess.run([str(kseg), "rfm", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False, ""
    return completed.returncode == 0, completed.stdout


def measure_kseg(kseg, tx_path, result_path, threads, scratch_dir):
    """Runs `kseg rfm` once. Its summary ends with "time: read and aggregate X s, score Y s": the
    aggregation streams the HDF5 blocks as it goes, so kseg's aggregation time includes reading the
    file, which the peers' aggregation time does not. Without that line (a changed summary) only
    the process time is known, and the report says so."""
    result_path.unlink(missing_ok=True)
    command = [str(kseg), "rfm", str(tx_path), "-o", str(result_path), "--threads", str(threads)]
    started = time.perf_counter()
    completed, peak_rss_mib = run_with_peak_rss(command, measured_env(threads), scratch_dir)
    process_seconds = time.perf_counter() - started
    match = KSEG_TIMING.search(completed.stdout)
    run = {"process_seconds": process_seconds, "peak_rss_mib": peak_rss_mib,
           "read_seconds": float("nan"), "load_seconds": float("nan"),
           "aggregate_seconds": float("nan"), "score_seconds": float("nan"),
           "write_seconds": float("nan"),
           "end_to_end_seconds": process_seconds, "own_timings": bool(match)}
    if match:
        run["aggregate_seconds"] = float(match.group(1))
        run["score_seconds"] = float(match.group(2))
        # Newer binaries also time writing RFM.h5 (compression and fsync), which the peers skip.
        if match.group(3) is not None:
            run["write_seconds"] = float(match.group(3))
    return run


def measure_peer(tool, tx_path, threads, scratch_dir, result_path):
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, str(tx_path), str(threads),
               str(result_path or "")]
    started = time.perf_counter()
    completed, peak_rss_mib = run_with_peak_rss(command, measured_env(threads), scratch_dir)
    process_seconds = time.perf_counter() - started
    run = json.loads(completed.stdout.strip().splitlines()[-1])
    run.update(process_seconds=process_seconds, peak_rss_mib=peak_rss_mib, own_timings=True)
    return run


def read_kseg_result(path):
    with h5py.File(path, "r") as file:
        group = file["rfm"]
        return {name: group[name][...] for name in ("customer_id", "recency", "frequency", "monetary",
                                                     "tenure", "score")}


def compare_tables(got, want):
    """Compares a peer's per-customer table with the reference (kseg's, or pandas' when kseg rfm is
    not available). Ids, recency, frequency and tenure are integers in days or counts and must be
    equal; monetary must agree to MONETARY_RTOL (bit-equal ones are counted too); scores must be
    equal. Returns a dict of mismatch counts and a one-line verdict."""
    check = {}
    if got["customer_id"].shape != want["customer_id"].shape or \
            not np.array_equal(got["customer_id"], want["customer_id"]):
        check["verdict"] = (f"customer ids differ ({len(got['customer_id'])} customers vs "
                            f"{len(want['customer_id'])})")
        check["features_equal"] = False
        check["score_mismatches"] = -1
        return check
    for name in ("recency", "frequency", "tenure"):
        check[f"{name}_mismatches"] = int(np.count_nonzero(
            np.asarray(got[name], dtype=np.float64) != np.asarray(want[name], dtype=np.float64)))
    got_monetary = np.asarray(got["monetary"], dtype=np.float64)
    want_monetary = np.asarray(want["monetary"], dtype=np.float64)
    difference = np.abs(got_monetary - want_monetary)
    scale = np.maximum(np.abs(want_monetary), np.finfo(np.float64).tiny)
    check["monetary_mismatches"] = int(np.count_nonzero(difference > MONETARY_RTOL * scale))
    check["monetary_bit_equal"] = int(np.count_nonzero(got_monetary == want_monetary))
    check["monetary_max_rel_diff"] = float((difference / scale).max()) if len(scale) else 0.0
    check["score_mismatches"] = int(np.count_nonzero(
        np.asarray(got["score"], dtype=np.int64) != np.asarray(want["score"], dtype=np.int64)))
    check["features_equal"] = all(check[f"{name}_mismatches"] == 0
                                  for name in ("recency", "frequency", "tenure", "monetary"))
    bit_equal_share = 100.0 * check["monetary_bit_equal"] / max(len(want_monetary), 1)
    if check["features_equal"]:
        verdict = (f"equal (monetary within {check['monetary_max_rel_diff']:.0e} rel., "
                   f"{bit_equal_share:.0f}% bit-equal)")
    else:
        wrong = [f"{name} {check[f'{name}_mismatches']}" for name in ("recency", "frequency", "tenure", "monetary")
                 if check[f"{name}_mismatches"]]
        verdict = f"MISMATCH: {', '.join(wrong)} customers"
    check["verdict"] = verdict + ("; scores equal" if check["score_mismatches"] == 0
                                  else f"; {check['score_mismatches']} score cells differ")
    return check


def ntile_differences(n, bins):
    """How many of n customers NTILE(bins) (remainder to the first bins) would score differently from
    pandas' qcut on rank(method="first"), per feature: a property of n alone, since both work on the
    same order."""
    rank = np.arange(1, n + 1, dtype=np.int64)
    qcut = 1 + np.clip((bins * (rank - 1) + n - 2) // (n - 1) - 1, 0, bins - 1)
    small, extra = divmod(n, bins)
    # NTILE: the first `extra` buckets hold small + 1 rows, the others `small`.
    boundary = extra * (small + 1)
    ntile = np.where(rank <= boundary, (rank - 1) // (small + 1) + 1,
                     extra + (rank - 1 - boundary) // max(small, 1) + 1)
    return int(np.count_nonzero(qcut != ntile))


def generate_transactions(kseg, tx_path, args):
    command = [str(kseg), "generate", "transactions", "--transactions", str(args.transactions),
               "--customers", str(args.customers), "--seed", str(args.seed), "--threads", str(args.threads),
               "--quiet", "-o", str(tx_path)]
    log(f"generating: {shlex.join(command)}")
    subprocess.run(command, check=True, env=measured_env(args.threads))
    # The file was just written: flush it to disk and read it once, untimed, so that no measured
    # run competes with the write-back of the fresh file and every tool reads it from the page cache.
    os.sync()
    read_columns(tx_path)
    return tx_path.stat().st_size / MIB


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_description(kseg):
    """What a reader needs to compare runs: CPU, cores, memory, versions of every tool, the source
    tree that built kseg (other developers change it while benchmarks run), and the load."""
    description = {}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        description["cpu"] = fields.get("Model name", "?").strip()
        description["avx512"] = "yes" if "avx512f" in fields.get("Flags", "") else "no"
    except OSError:
        description["cpu"] = platform.processor() or "?"
        description["avx512"] = "?"
    description["cores"] = os.cpu_count()
    with open("/proc/meminfo") as meminfo:
        kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    description["memory_gib"] = round(kib / 1024 / 1024, 1)
    description["kseg"] = subprocess.run([str(kseg), "--version"], capture_output=True, text=True).stdout.strip()
    git = ["git", "-C", str(REPO_ROOT)]
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    description["kseg_tree"] = f"{commit}{' + uncommitted changes' if dirty else ''}"
    description["kseg_binary_built"] = datetime.datetime.fromtimestamp(
        Path(kseg).stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for package in ("pandas", "duckdb", "polars", "pyarrow", "numpy", "h5py"):
        description[package] = package_version(package) or "not installed"
    description["python"] = platform.python_version()
    description["time_tool"] = "GNU time" if os.access("/usr/bin/time", os.X_OK) else "Python rusage wrapper"
    description["load_before"] = "%.2f %.2f %.2f" % os.getloadavg()
    description["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return description


def summarize(tool, runs):
    """Medians over the repeats of every timing, and the largest peak RSS."""
    row = {"tool": tool, "repeats": len(runs), "own_timings": all(run["own_timings"] for run in runs)}
    for field in ("read_seconds", "load_seconds", "aggregate_seconds", "score_seconds",
                  "end_to_end_seconds", "process_seconds"):
        row[field] = statistics.median(run[field] for run in runs)
    # The compute total is taken per run, then the median: the median of a sum is what one run costs.
    row["compute_seconds"] = statistics.median(run["aggregate_seconds"] + run["score_seconds"] for run in runs)
    row["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
    if all("write_seconds" in run for run in runs):
        row["write_seconds"] = statistics.median(run["write_seconds"] for run in runs)
    return row


def fmt(value, digits=3):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def markdown_report(rows, checks, reference, machine, args, command_line, data, notes):
    """The table (every tool against `reference`: kseg, or the first measured peer when kseg rfm
    could not be run), the goals, and the notes."""
    kseg_row = rows.get("kseg") if reference == "kseg" else None
    lines = [
        "## RFM: kseg vs pandas, DuckDB, Polars",
        "",
        f"Command: `{command_line}`",
        "",
        f"Machine: {machine['cpu']} (AVX-512: {machine['avx512']}), {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB; {machine['kseg']} (tree {machine['kseg_tree']}, binary built "
        f"{machine['kseg_binary_built']}); pandas {machine['pandas']}, DuckDB {machine['duckdb']}, "
        f"Polars {machine['polars']}, pyarrow {machine['pyarrow']}, numpy {machine['numpy']}, h5py {machine['h5py']}, "
        f"Python {machine['python']}; peak RSS by {machine['time_tool']}; {machine['date']}. "
        f"Load average (1, 5, 15 min) before: {machine['load_before']}, after: {machine['load_after']}.",
        "",
        f"Data: `kseg generate transactions --transactions {args.transactions} --customers {args.customers} "
        f"--seed {args.seed}` ({data['file_mib']:.0f} MiB HDF5, {data['customers']} buying customers after "
        f"dropping returns). Task: default RFM (returns dropped, frequency = distinct invoices, monetary = "
        f"sum, recency and tenure in whole days to midnight UTC after the last kept day), {BINS} rank-mode "
        f"scores. {args.threads} threads per tool, median of {args.repeats} repeat(s), each run a fresh process.",
        "",
        "Seconds. *read*: h5py reads the five columns into numpy; *load*: building the tool's table from "
        "them; neither is in *compute* (= aggregate + score). kseg streams the file while it aggregates, so "
        "its *aggregate* includes its HDF5 read. *end-to-end*: kseg's whole process (start, read, compute, "
        "writing RFM.h5); for the peers read + load + compute in the process, without interpreter start-up "
        "and imports (those are in *process*).",
        "",
        "| tool | read | load | aggregate | score | compute | end-to-end | process | peak RSS MiB | "
        f"compute ÷ {reference} | end-to-end ÷ {reference} | per-customer R, F, M vs {reference} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    base = rows[reference]
    for tool in TOOLS:
        if tool not in rows:
            continue
        row = rows[tool]
        if not row.get("available", True):
            lines.append(f"| {tool} | — | — | — | — | — | — | — | — | — | — | {row['reason']} |")
            continue
        aggregate = fmt(row["aggregate_seconds"])
        if tool == "kseg" and row["own_timings"]:
            aggregate += " (incl. read)"
        compute_ratio = (row["compute_seconds"] / base["compute_seconds"]
                         if base["own_timings"] and row["own_timings"] else float("nan"))
        end_ratio = row["end_to_end_seconds"] / base["end_to_end_seconds"]
        verdict = "reference" if tool == reference else checks.get(tool, {}).get("verdict", "not checked")
        lines.append(
            f"| {tool} | {fmt(row['read_seconds'])} | {fmt(row['load_seconds'])} | {aggregate} | "
            f"{fmt(row['score_seconds'])} | {fmt(row['compute_seconds'])} | {fmt(row['end_to_end_seconds'])} | "
            f"{fmt(row['process_seconds'])} | {row['peak_rss_mib']:.0f} | {fmt(compute_ratio, 2)} | "
            f"{fmt(end_ratio, 2)} | {verdict} |")
    lines.append("")
    if kseg_row is not None:
        lines.append("Goals (ratios > 1: kseg is faster):")
        lines.append("")
        for tool, goal, bar in (("pandas", "kseg ≥ 15× faster than pandas in total", 15.0),
                                ("duckdb", "kseg ahead of DuckDB", 1.0),
                                ("polars", "no bar; reported", None)):
            row = rows.get(tool)
            if not row or not row.get("available", True):
                lines.append(f"- {tool}: not measured ({row['reason'] if row else 'not selected'})")
                continue
            compute_ratio = (row["compute_seconds"] / kseg_row["compute_seconds"]
                             if kseg_row["own_timings"] else float("nan"))
            end_ratio = row["end_to_end_seconds"] / kseg_row["end_to_end_seconds"]
            if bar is None:
                verdict = ""
            else:
                met = [name for name, ratio in (("compute", compute_ratio), ("end-to-end", end_ratio))
                       if not np.isnan(ratio) and (ratio >= bar if bar > 1 else ratio > bar)]
                verdict = f" — met on: {', '.join(met) if met else 'neither'}"
            lines.append(f"- {goal}: {tool}/kseg = {fmt(compute_ratio, 2)} (compute), "
                         f"{fmt(end_ratio, 2)} (end-to-end){verdict}")
        lines.append("")
    if kseg_row is not None and not np.isnan(kseg_row.get("write_seconds", float("nan"))):
        lines.append(f"- kseg's end-to-end includes writing RFM.h5 (gzip-compressed datasets, then fsync and "
                     f"rename): median {fmt(kseg_row['write_seconds'])} s of it; the peers' end-to-end writes "
                     f"nothing. Without it kseg's end-to-end would be "
                     f"{fmt(kseg_row['end_to_end_seconds'] - kseg_row['write_seconds'])} s.")
    for note in notes:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def write_csv(path, rows):
    fields = []
    for row in rows:
        fields += [key for key in row if key not in fields]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def log(message):
    print(message, file=sys.stderr, flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        tool, tx_path, threads, result_path = sys.argv[2:6]
        worker_main(tool, tx_path, int(threads), result_path)
        return 0

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=lambda text: int(float(text)), default=10_000_000,
                        help="transaction rows to generate (default 1e7)")
    parser.add_argument("--customers", type=lambda text: int(float(text)), default=1_000_000,
                        help="customer ids to draw from (default 1e6)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per tool (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every tool (default 2)")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help=f"comma-separated subset of {','.join(TOOLS)} (default all)")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "bench" / "out",
                        help="scratch data and results (default bench/out)")
    parser.add_argument("--kseg", type=Path, default=REPO_ROOT / "build" / "release" / "kseg",
                        help="kseg binary (default build/release/kseg)")
    parser.add_argument("--keep", action="store_true", help="keep the transaction file and kseg's RFM.h5")
    args = parser.parse_args()
    tools = [tool.strip() for tool in args.tools.split(",") if tool.strip()]
    unknown = [tool for tool in tools if tool not in TOOLS]
    if unknown or not tools:
        parser.error(f"--tools: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(TOOLS)}")
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    if not os.access(args.kseg, os.X_OK):
        parser.error(f"{args.kseg} is not an executable kseg (it also generates the data); "
                     "build it (see bench/README.md)")
    args.kseg = args.kseg.resolve()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    scratch_dir = args.out_dir.resolve()
    command_line = shlex.join([os.path.relpath(sys.executable, Path.cwd()), os.path.relpath(__file__, Path.cwd())]
                              + sys.argv[1:])

    rows, notes = {}, []
    # A peer that is not installed (bench/setup.sh could not install it) is reported, not fatal.
    for tool in [tool for tool in tools if tool in PEERS]:
        missing = [package for package in PEER_PACKAGES[tool] if package_version(package) is None]
        if missing:
            rows[tool] = {"available": False, "reason": f"not installed ({', '.join(missing)}; run bench/setup.sh)"}
    if "kseg" in tools:
        available, help_text = kseg_rfm_available(args.kseg)
        if not available:
            rows["kseg"] = {"available": False, "reason": f"`kseg rfm` not available in {args.kseg}"}
            notes.append(f"`kseg rfm` is not available in this binary: the peers were measured alone and "
                         "checked against pandas.")
        elif "--log-json" in help_text:
            notes.append("`kseg rfm --help` lists --log-json; this driver still reads the printed timing "
                         "summary.")
    measured = [tool for tool in tools if rows.get(tool, {}).get("available", True)]
    if not measured:
        parser.error("nothing to measure: " + "; ".join(f"{tool}: {row['reason']}" for tool, row in rows.items()))

    machine = machine_description(args.kseg)
    log(f"machine: {machine}")
    tx_path = scratch_dir / "rfm_tx.h5"
    kseg_result_path = scratch_dir / "rfm_kseg.h5"
    file_mib = generate_transactions(args.kseg, tx_path, args)

    runs = {tool: [] for tool in measured}
    raw_rows = []
    result_paths = {tool: scratch_dir / f"rfm_{tool}.npz" for tool in PEERS}
    for repeat in range(args.repeats):
        # The tools take turns inside each repeat, so that drift in the load of this shared machine
        # spreads over all of them instead of penalizing whichever runs last.
        for tool in measured:
            if tool == "kseg":
                run = measure_kseg(args.kseg, tx_path, kseg_result_path, args.threads, scratch_dir)
            else:
                run = measure_peer(tool, tx_path, args.threads, scratch_dir,
                                   result_paths[tool] if repeat == 0 else None)
            runs[tool].append(run)
            raw_rows.append({"tool": tool, "repeat": repeat, **{key: (round(value, 6) if isinstance(value, float)
                                                                     else value) for key, value in run.items()}})
            log(f"repeat {repeat + 1}/{args.repeats} {tool}: aggregate {fmt(run['aggregate_seconds'])} s, "
                f"score {fmt(run['score_seconds'])} s, end-to-end {fmt(run['end_to_end_seconds'])} s, "
                f"peak RSS {run['peak_rss_mib']:.0f} MiB")
    for tool in measured:
        rows[tool] = summarize(tool, runs[tool])
    if "kseg" in runs and not rows["kseg"]["own_timings"]:
        notes.append("kseg printed no timing summary: its compute time is unknown, only its end-to-end process "
                     "time is compared.")

    # Correctness: every peer's per-customer table against kseg's RFM.h5, or against pandas' when
    # kseg rfm was not measured.
    tables = {tool: dict(np.load(result_paths[tool])) for tool in measured if tool in PEERS}
    if "kseg" in runs:
        reference_name, reference_table = "kseg", read_kseg_result(kseg_result_path)
    elif "pandas" in tables:
        reference_name, reference_table = "pandas", tables["pandas"]
    else:
        reference_name, reference_table = None, None
    checks = {}
    for tool, table in tables.items():
        if reference_table is not None and tool != reference_name:
            checks[tool] = compare_tables(table, reference_table)
            log(f"check {tool} vs {reference_name}: {checks[tool]['verdict']}")
    customers = len(reference_table["customer_id"]) if reference_table is not None else \
        len(next(iter(tables.values()))["customer_id"])
    for tool, row in rows.items():
        if tool in checks:
            row.update({f"check_{key}": value for key, value in checks[tool].items()})
    notes.append(f"Scores: the peers compute pandas' qcut(rank(method=\"first\"), {BINS}) (DuckDB and Polars "
                 f"in exact integer arithmetic on row_number()/rank(\"ordinal\")); SQL's NTILE({BINS}) would "
                 f"score {ntile_differences(customers, BINS)} of the {customers} customers differently per "
                 "feature, because it gives the remainder to the first bins.")
    notes.append(f"Monetary sums are compared to a relative {MONETARY_RTOL:g}: the tools add in different orders "
                 "(pandas with Kahan compensation), so last-bit differences are rounding, not different rows.")

    machine["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()
    data = {"file_mib": file_mib, "customers": customers}
    reference = reference_name or measured[0]
    report = markdown_report(rows, checks, reference, machine, args, command_line, data, notes)
    print(report)
    (scratch_dir / "rfm_vs_dataframes.md").write_text(report)
    write_csv(scratch_dir / "rfm_vs_dataframes.csv",
              [dict(row, **{"machine_" + key: value for key, value in machine.items()}) for row in rows.values()])
    write_csv(scratch_dir / "rfm_vs_dataframes_runs.csv", raw_rows)
    for path in result_paths.values():
        path.unlink(missing_ok=True)
    if not args.keep:
        tx_path.unlink(missing_ok=True)
        kseg_result_path.unlink(missing_ok=True)
    log(f"wrote {scratch_dir / 'rfm_vs_dataframes.md'}, rfm_vs_dataframes.csv and rfm_vs_dataframes_runs.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
