"""Allocation failures are errors, not crashes. For each command, a first run counts the
allocations kseg's own code makes (tests/fault/fail_allocation.c, preloaded); then the command is
run again with each of them failing in turn (every one, or an even sample of 120 where there are
more). Every run must either succeed with the same result as without failures, or exit 1 with one
line on stderr naming the command, and never leave an output or temporary file behind.

Runs only in the build without sanitizers: AddressSanitizer replaces malloc itself."""
import os
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import KSEG, run_kseg, run_cases  # noqa: E402

LIBRARY = os.environ.get("KSEG_FAIL_ALLOCATION_LIBRARY", "")
# Runs per command; KSEG_FAULT_SAMPLES=0 fails every allocation (a longer run by hand).
SAMPLES = int(os.environ.get("KSEG_FAULT_SAMPLES", "120")) or 10**9


def run_with_failure(args, fail_at=None, count_file=None):
    environment = dict(os.environ, LD_PRELOAD=LIBRARY, OMP_NUM_THREADS="2")
    if fail_at is not None:
        environment["KSEG_FAIL_ALLOCATION"] = str(fail_at)
    if count_file:
        environment["KSEG_COUNT_ALLOCATIONS_FILE"] = count_file
    return subprocess.run([KSEG, *map(str, args)], capture_output=True, text=True,
                          env=environment)


def failure_points(total):
    """Every allocation number 1..total, or SAMPLES of them evenly spread."""
    if total <= SAMPLES:
        return list(range(1, total + 1))
    return sorted({round(1 + i * (total - 1) / (SAMPLES - 1)) for i in range(SAMPLES)})


def h5_arrays(path, names):
    with h5py.File(path, "r") as f:
        return [f[name][()] for name in names]


def exercise(tmp, args, outputs, compare):
    """args: the command; outputs: the paths it writes (in the output directory out/);
    compare(path_of_output) -> None raises if a successful run's result differs."""
    out_dir = os.path.join(tmp, "out")
    os.makedirs(out_dir, exist_ok=True)
    count_file = os.path.join(tmp, "count")
    result = run_with_failure(args, count_file=count_file)
    assert result.returncode == 0, f"the run without failures failed: {result.stderr}"
    total = int(open(count_file).read())
    assert total > 0, "no allocation was counted: is the preload library active?"
    for path in outputs:
        os.unlink(path)
    points = failure_points(total)
    outcomes = {"succeeded": 0, "failed cleanly": 0}
    prefix = f"kseg {args[0]}:"
    for fail_at in points:
        before = set(os.listdir(out_dir))
        result = run_with_failure(args, fail_at=fail_at)
        where = f"allocation {fail_at} of {total}"
        assert result.returncode in (0, 1), \
            f"{where}: exit status {result.returncode}: {result.stderr[-400:]}"
        if result.returncode == 0:
            compare()
            outcomes["succeeded"] += 1
            for path in outputs:
                os.unlink(path)
        else:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            errors = [line for line in lines if ": warning:" not in line]
            assert len(errors) == 1, f"{where}: expected one error line, got {lines}"
            assert errors[0].startswith(prefix), f"{where}: {errors[0]}"
            outcomes["failed cleanly"] += 1
        left = set(os.listdir(out_dir)) - before
        assert not left, f"{where}: left behind {sorted(left)}"
    print(f"     {total} allocations, {len(points)} failed in turn: {outcomes}")


def case_cluster_and_predict(tmp):
    data = os.path.join(tmp, "blobs.h5")
    run_kseg("generate", "blobs", "--n", 3000, "--d", 5, "--k", 4, "--seed", 1, "-o", data)
    reference = os.path.join(tmp, "reference.h5")
    run_kseg("cluster", data, "-k", 4, "--seed", 3, "-o", reference)
    expected = h5_arrays(reference, ["/labels/cluster", "/model/centroids"])
    out = os.path.join(tmp, "out", "result.h5")

    def same_result():
        got = h5_arrays(out, ["/labels/cluster", "/model/centroids"])
        assert all(np.array_equal(a, b) for a, b in zip(got, expected)), "result differs"

    exercise(tmp, ["cluster", data, "-k", 4, "--seed", 3, "-o", out], [out], same_result)

    predicted = os.path.join(tmp, "out", "labels.h5")

    def same_labels():
        (labels,) = h5_arrays(predicted, ["/labels/cluster"])
        assert np.array_equal(labels, expected[0]), "predicted labels differ"

    exercise(tmp, ["predict", "--model", reference, data, "-o", predicted], [predicted], same_labels)


def case_generate_rfm_and_run(tmp):
    transactions = os.path.join(tmp, "tx.h5")
    run_kseg("generate", "transactions", "--customers", 400, "--transactions", 4000, "--seed", 2,
             "-o", transactions)
    reference = os.path.join(tmp, "rfm_reference.h5")
    run_kseg("rfm", transactions, "-o", reference, "--quiet")
    names = ["/rfm/customer_id", "/rfm/score", "/rfm/segment"]
    expected = h5_arrays(reference, names)
    out = os.path.join(tmp, "out", "rfm.h5")
    csv = os.path.join(tmp, "out", "rfm.csv")

    def same_scores():
        got = h5_arrays(out, names)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected)), "scores differ"
        assert os.path.exists(csv), "the CSV is missing"

    exercise(tmp, ["rfm", transactions, "-o", out, "--csv", csv, "--quiet"], [out, csv],
             same_scores)

    generated = os.path.join(tmp, "out", "generated.h5")

    def same_generated():
        got = h5_arrays(generated, ["/transactions/customer_id", "/transactions/amount"])
        want = h5_arrays(transactions, ["/transactions/customer_id", "/transactions/amount"])
        assert all(np.array_equal(a, b) for a, b in zip(got, want)), "generated data differ"

    exercise(tmp, ["generate", "transactions", "--customers", 400, "--transactions", 4000,
                   "--seed", 2, "-o", generated], [generated], same_generated)

    config = os.path.join(tmp, "run.yaml")
    with open(config, "w") as f:
        f.write(f"input:\n  transactions: {transactions}\ncluster:\n  k: 3\n  seed: 1\n"
                "schemes:\n  rfm: true\n  lifecycle: true\nreport:\n  html: false\n")
    run_dir = os.path.join(tmp, "out", "run")
    reference_dir = os.path.join(tmp, "run_reference")
    run_kseg("run", config, "-o", reference_dir, "-q")
    (want_labels,) = h5_arrays(os.path.join(reference_dir, "result.h5"), ["/labels/cluster"])
    os.makedirs(run_dir)

    def same_run():
        (labels,) = h5_arrays(os.path.join(run_dir, "result.h5"), ["/labels/cluster"])
        assert np.array_equal(labels, want_labels), "kseg run labels differ"

    # kseg run writes several files; a failure after some are committed leaves those (each one
    # complete), so the run directory is emptied between runs rather than compared.
    def run_case():
        count_file = os.path.join(tmp, "run_count")
        result = run_with_failure(["run", config, "-o", run_dir, "-q"], count_file=count_file)
        assert result.returncode == 0, result.stderr
        total = int(open(count_file).read())
        points = failure_points(total)
        outcomes = {"succeeded": 0, "failed cleanly": 0}
        for fail_at in points:
            for name in os.listdir(run_dir):
                os.unlink(os.path.join(run_dir, name))
            result = run_with_failure(["run", config, "-o", run_dir, "-q"], fail_at=fail_at)
            where = f"kseg run, allocation {fail_at} of {total}"
            assert result.returncode in (0, 1), \
                f"{where}: exit status {result.returncode}: {result.stderr[-400:]}"
            hidden = [name for name in os.listdir(run_dir) if ".tmp." in name]
            assert not hidden, f"{where}: left behind {hidden}"
            if result.returncode == 0:
                same_run()
                outcomes["succeeded"] += 1
            else:
                lines = [line for line in result.stderr.splitlines() if line.strip()]
                errors = [line for line in lines if ": warning:" not in line]
                assert len(errors) == 1 and errors[0].startswith("kseg run:"), \
                    f"{where}: {lines}"
                outcomes["failed cleanly"] += 1
        print(f"     kseg run: {total} allocations, {len(points)} failed in turn: {outcomes}")

    run_case()


def case_import_csv(tmp):
    source = os.path.join(tmp, "orders.csv")
    rows = ["InvoiceNo,InvoiceDate,CustomerID,Quantity,UnitPrice,Country"]
    for i in range(300):
        rows.append(f"{1000 + i // 3},2024-0{1 + i % 9}-1{i % 10} 10:00,{17000 + i % 37}.0,"
                    f"{1 + i % 5},{(i % 7) * 1.25 + 0.5},\"{['UK', 'France', 'EIRE'][i % 3]}\"")
    with open(source, "w") as f:
        f.write("\n".join(rows) + "\n")
    args = ["--customer", "CustomerID", "--time", "InvoiceDate", "--quantity", "Quantity",
            "--price", "UnitPrice", "--invoice", "InvoiceNo", "--category", "Country"]
    reference = os.path.join(tmp, "reference.h5")
    run_kseg("import", "transactions", source, "-o", reference, *args, "--quiet")
    names = ["/transactions/customer_id", "/transactions/amount", "/transactions/time"]
    expected = h5_arrays(reference, names)
    out = os.path.join(tmp, "out", "tx.h5")

    def same_import():
        got = h5_arrays(out, names)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected)), "import differs"

    exercise(tmp, ["import", "transactions", source, "-o", out, *args, "--quiet"], [out],
             same_import)


def case_address_space_limits(tmp):
    """Under ulimit -v, whatever gives out first (kseg's budget check, one of kseg's allocations,
    or one of HDF5's), the job ends with exit 1 and one error line and no output, or succeeds.
    It never crashes or hangs (OpenBLAS's thread pool used to hang such a process at exit)."""
    import resource
    data = os.path.join(tmp, "blobs.h5")
    run_kseg("generate", "blobs", "--n", 3_000_000, "--d", 8, "--k", 4, "-o", data)
    out = os.path.join(tmp, "out.h5")
    outcomes = []
    for megabytes in (150, 200, 250, 400):
        limit = megabytes << 20

        def cap_address_space():
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        result = subprocess.run([KSEG, "cluster", data, "-k", "3", "-o", out],
                                capture_output=True, text=True, preexec_fn=cap_address_space,
                                timeout=120)
        where = f"ulimit -v {megabytes} MiB"
        assert result.returncode in (0, 1), f"{where}: exit {result.returncode}: {result.stderr}"
        if result.returncode == 1:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("kseg cluster:"), f"{where}: {lines}"
            assert not os.path.exists(out), f"{where}: output written"
            outcomes.append(lines[0])
        else:
            assert os.path.exists(out), f"{where}: success without output"
            os.unlink(out)
            outcomes.append("succeeded")
        print(f"     {where}: {outcomes[-1]}")
    assert any("needs" in outcome and "available" in outcome for outcome in outcomes), \
        "the budget check never refused the data"
    assert outcomes[-1] == "succeeded", "the job failed even with 400 MiB"


def main():
    assert LIBRARY and os.path.exists(LIBRARY), \
        "KSEG_FAIL_ALLOCATION_LIBRARY must name the built fail_allocation library"
    run_cases(globals())


if __name__ == "__main__":
    main()
