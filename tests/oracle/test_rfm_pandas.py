"""Oracle: `kseg rfm` on the UCI Online Retail data against pandas reading the same CSV.

For several option sets, pandas computes the stages (which rows and customers each removes),
per-customer recency, frequency, monetary value (summed in row order, so equal to the bit),
tenure and kept rows, the cut points (numpy.quantile on linspace), the scores (pandas.qcut on
rank(method="first") over customers ordered by id, or numpy.searchsorted on the cut points) and
the segments of the built-in map; every value must equal kseg's. Then the command's bad-input
behaviour: one line on stderr, exit status 1 (2 for usage), and no output file.

The dataset must be present (shared/datasets beside the repository): a missing file is a failure,
never a skip."""
import functools
import gzip
import json
import operator
import os
import sys

import h5py
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
from common import Cases, run_kseg, scratch_dir  # noqa: E402

SOURCE_DIR = os.environ.get("KSEG_SOURCE_DIR",
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RETAIL = os.path.join(SOURCE_DIR, "..", "shared", "datasets", "online_retail",
                      "online_retail.csv.gz")
IMPORT_ARGS = ["--customer", "CustomerID", "--time", "InvoiceDate", "--quantity", "Quantity",
               "--price", "UnitPrice", "--invoice", "InvoiceNo", "--category", "Country"]
DAY = 86400
# Exact decimal-to-double conversion: pandas 3 does it by default (and deprecates the option).
EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}

# The built-in map, rows R = 5..1, columns F = 1..5 ("best high").
GRID = [
    ["New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"],
    ["Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers",
     "Loyal Customers"],
    ["About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"],
    ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
    ["Lost", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
]


def grid_name(r, f, bins):
    """Score s of `bins` bins sits at level ceil(5 s / bins) of the 5 x 5 grid."""
    level_r = -(-5 * r // bins)
    level_f = -(-5 * f // bins)
    return GRID[5 - level_r][level_f - 1]


def load_csv(path=RETAIL):
    """The CSV as pandas reads it: exact doubles (round_trip), times as UTC seconds."""
    df = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str, "Description": str,
                                    "Country": str},
                     keep_default_na=False, na_values={"CustomerID": [""]}, **EXACT_FLOATS)
    times = pd.to_datetime(df["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    df["seconds"] = (times - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    df["amount"] = df["Quantity"].astype(np.float64) * df["UnitPrice"]
    df["is_return"] = (df["InvoiceNo"].str.startswith("C") | (df["Quantity"] < 0)
                       | (df["amount"] < 0))
    return df


def customers_of(df, mask):
    return set(df.loc[mask, "CustomerID"].astype(np.int64))


def pandas_rfm(df, opts, dedupe_columns):
    """The expected /rfm content for options opts (a dict) computed with pandas."""
    bins = opts.get("bins", 5)
    stages = []
    remaining = df["CustomerID"].notna()
    stages.append({"rows": int((~remaining).sum()), "customers": 0})

    def apply_stage(removed):
        nonlocal remaining
        before = customers_of(df, remaining)
        remaining = remaining & ~removed
        stages.append({"rows": int(removed.sum()),
                       "customers": len(before - customers_of(df, remaining))})

    if opts.get("dedupe"):
        duplicated = pd.Series(False, index=df.index)
        duplicated[remaining] = df.loc[remaining, dedupe_columns].duplicated(keep="first")
        apply_stage(duplicated)
    else:
        apply_stage(pd.Series(False, index=df.index))
    if opts.get("where"):
        apply_stage(remaining & ~df["Country"].isin(opts["where"]))
    else:
        apply_stage(pd.Series(False, index=df.index))
    if "min_price" in opts:
        apply_stage(remaining & (df["UnitPrice"] < opts["min_price"]))
    else:
        apply_stage(pd.Series(False, index=df.index))
    net = opts.get("returns") == "net"
    if net:
        kept = remaining
        purchases = kept & ~df["is_return"]
        buyers = customers_of(df, purchases)
        kept_customers = customers_of(df, kept)
        return_only = df["CustomerID"].isin(list(kept_customers - buyers)) & kept
        stages.append({"rows": int(return_only.sum()),
                       "customers": len(kept_customers - buyers)})
        kept = kept & ~return_only
    else:
        apply_stage(remaining & df["is_return"])
        kept = remaining
        purchases = kept
    rows = df[kept].assign(cid=lambda d: d["CustomerID"].astype(np.int64))
    bought = rows[~rows["is_return"]] if net else rows
    groups = bought.groupby("cid", sort=True)
    out = pd.DataFrame(index=groups.size().index)
    out["last"] = groups["seconds"].max()
    out["first"] = groups["seconds"].min()
    frequency = opts.get("frequency", "invoices")
    if frequency == "invoices":
        out["frequency"] = groups["InvoiceNo"].nunique().astype(np.float64)
    elif frequency == "lines":
        out["frequency"] = groups.size().astype(np.float64)
    else:
        out["frequency"] = (bought["seconds"] // DAY).groupby(bought["cid"]).nunique() \
            .astype(np.float64)
    # Summed one by one in row order, as kseg does: the same bits.
    sums = rows.groupby("cid", sort=True)["amount"].agg(
        lambda s: functools.reduce(operator.add, s.tolist(), 0.0))
    out["monetary"] = sums if opts.get("monetary", "sum") == "sum" else sums / out["frequency"]
    out["rows"] = rows.groupby("cid", sort=True).size()
    last_time = int(out["last"].max())
    if "reference_date" in opts:
        reference = int(pd.Timestamp(opts["reference_date"]).value // 10**9)
    else:
        reference = (last_time // DAY + 1) * DAY
    out["recency"] = ((reference - out["last"]) // DAY).astype(np.float64)
    out["tenure"] = ((reference - out["first"]) // DAY).astype(np.float64)

    scores, cuts = {}, {}
    for feature in ("recency", "frequency", "monetary"):
        values = out[feature]  # ordered by customer id: rank ties go to the smaller id
        cuts[feature] = np.quantile(values.to_numpy(), np.linspace(0, 1, bins + 1))
        if opts.get("ties", "rank") == "rank":
            ascending = pd.qcut(values.rank(method="first"), bins, labels=False) + 1
        else:
            ascending = np.searchsorted(cuts[feature][1:-1], values.to_numpy(), side="left") + 1
            if len(np.unique(cuts[feature])) == len(cuts[feature]):
                by_qcut = pd.qcut(values, bins, labels=False) + 1
                assert np.array_equal(by_qcut.to_numpy(), ascending), \
                    f"{feature}: searchsorted and qcut disagree with distinct cuts"
        scores[feature] = np.asarray(ascending, dtype=np.int64)
    best_low = opts.get("best") == "low"
    r = bins + 1 - scores["recency"]
    f = scores["frequency"]
    m = scores["monetary"]
    if best_low:
        r, f, m = bins + 1 - r, bins + 1 - f, bins + 1 - m
    segments = [grid_name(bins + 1 - a if best_low else a, bins + 1 - b if best_low else b, bins)
                for a, b in zip(r, f)]
    return {"table": out, "scores": np.stack([r, f, m], axis=1), "segments": segments,
            "cuts": np.stack([cuts["recency"], cuts["frequency"], cuts["monetary"]]),
            "stages": stages, "reference": reference, "last_time": last_time,
            "kept_rows": int(kept.sum())}


def cli_args(opts):
    args = []
    for key, flag in (("frequency", "--frequency"), ("monetary", "--monetary"),
                      ("returns", "--returns"), ("ties", "--ties"), ("best", "--best"),
                      ("bins", "--bins"), ("min_price", "--min-price"),
                      ("reference_date", "--reference-date")):
        if key in opts:
            args += [flag, opts[key]]
    for value in opts.get("where", []):
        args += ["--where", f"Country={value}"]
    if opts.get("dedupe"):
        args.append("--dedupe")
    return args


def read_result(path):
    with h5py.File(path, "r") as f:
        g = f["rfm"]
        names = [v.decode() if isinstance(v, bytes) else v for v in g["segment_names"][:]]
        return {
            "customer_id": g["customer_id"][:], "recency": g["recency"][:],
            "frequency": g["frequency"][:], "monetary": g["monetary"][:],
            "tenure": g["tenure"][:], "rows": g["rows"][:], "score": g["score"][:],
            "segment": [names[s] for s in g["segment"][:]], "cuts": g["cuts"][:],
            "stages_rows": g["stages/rows_removed"][:],
            "stages_customers": g["stages/customers_removed"][:],
            "attrs": dict(g.attrs), "score_columns": list(g["score"].attrs["columns"]),
            "segment_customers": g["segment_customers"][:],
            "segment_revenue": g["segment_revenue"][:], "names": names,
        }


def assert_equal_arrays(name, got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, pandas {want.shape}"
    differ = np.flatnonzero(got != want)
    assert len(differ) == 0, (f"{name}: {len(differ)} of {len(want)} differ, first at {differ[0]}: "
                              f"kseg {got[differ[0]]!r}, pandas {want[differ[0]]!r}")


def compare(tx, df, tmp, name, opts, dedupe_columns=None):
    out = os.path.join(tmp, f"{name}.h5")
    csv_out = os.path.join(tmp, f"{name}.csv")
    run_kseg("rfm", tx, "-o", out, "--csv", csv_out, "--quiet", *cli_args(opts))
    got = read_result(out)
    want = pandas_rfm(df, opts, dedupe_columns)
    table = want["table"]
    assert_equal_arrays("customer_id", got["customer_id"], table.index.to_numpy())
    for column in ("recency", "frequency", "monetary", "tenure"):
        assert_equal_arrays(column, got[column], table[column].to_numpy())
    assert_equal_arrays("rows", got["rows"], table["rows"].to_numpy())
    assert got["score_columns"] == ["R", "F", "M"], got["score_columns"]
    assert_equal_arrays("scores", got["score"], want["scores"])
    assert_equal_arrays("cut points", got["cuts"], want["cuts"])
    assert got["segment"] == want["segments"], "segments differ"
    assert_equal_arrays("stage rows", got["stages_rows"], [s["rows"] for s in want["stages"]])
    assert_equal_arrays("stage customers", got["stages_customers"],
                        [s["customers"] for s in want["stages"]])
    attrs = got["attrs"]
    assert attrs["reference_time"] == want["reference"], attrs["reference_time"]
    assert attrs["last_time"] == want["last_time"], attrs["last_time"]
    assert attrs["total_rows"] == len(df) and attrs["kept_rows"] == want["kept_rows"]
    assert attrs["customers"] == len(table)
    options = json.loads(attrs["options"])
    assert options["bins"] == opts.get("bins", 5), options
    assert [s["name"] for s in json.loads(attrs["stages"])] == \
        ["no customer id", "dedupe", "where", "min price", "returns"]
    # The segment table adds up, and the CSV holds the same table with segment names.
    assert got["segment_customers"].sum() == len(table)
    csv = pd.read_csv(csv_out, keep_default_na=False, **EXACT_FLOATS)
    assert list(csv.columns) == ["customer_id", "recency", "frequency", "monetary", "tenure",
                                 "rows", "r_score", "f_score", "m_score", "segment"]
    assert_equal_arrays("csv customer_id", csv["customer_id"], got["customer_id"])
    assert_equal_arrays("csv monetary", csv["monetary"], got["monetary"])
    assert_equal_arrays("csv scores", csv[["r_score", "f_score", "m_score"]], got["score"])
    assert list(csv["segment"]) == got["segment"], "csv segments differ"


def expect_failure(tmp, args, fragments, code=1):
    out = os.path.join(tmp, "failed.h5")
    result = run_kseg("rfm", *args, "-o", out, check=False)
    assert result.returncode == code, \
        f"exit {result.returncode}, expected {code}: {result.stderr.strip()}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert not os.path.exists(out), "an output file was left behind"
    assert not [n for n in os.listdir(tmp) if n.startswith("failed.h5")], os.listdir(tmp)


def main():
    if not os.path.exists(RETAIL):
        print(f"FAIL dataset: {RETAIL} is missing (the oracle needs shared/datasets beside the "
              f"repository)")
        print("0 passed, 1 failed")
        sys.exit(1)
    cases = Cases()
    df = load_csv()
    with scratch_dir() as tmp:
        tx = os.path.join(tmp, "retail.h5")
        cases.run("import the Online Retail CSV", run_kseg, "import", "transactions", RETAIL,
                  "-o", tx, "--quiet", *IMPORT_ARGS)
        if cases.failed:
            cases.finish()  # every comparison needs the imported file
        cases.run("defaults (invoices, sum, returns dropped, rank, 5 bins)", compare, tx, df,
                  tmp, "defaults", {})
        cases.run("days, returns netted, value ties, where Country=United Kingdom", compare, tx,
                  df, tmp, "days_net_value_uk",
                  {"frequency": "days", "returns": "net", "ties": "value",
                   "where": ["United Kingdom"]})
        cases.run("lines, mean, best low, min price, 4 bins, two countries, reference date",
                  compare, tx, df, tmp, "lines_mean_low",
                  {"frequency": "lines", "monetary": "mean", "best": "low", "min_price": 0.5,
                   "bins": 4, "where": ["France", "Germany"], "reference_date": "2011-12-31"})
        cases.run("rank ties with 6 bins (pandas' rounding at bin edges)", compare, tx, df, tmp, "bins6", {"bins": 6})
        cases.run("value ties with 10 bins, days", compare, tx, df, tmp, "bins10",
                  {"bins": 10, "ties": "value", "frequency": "days"})
        # Dedupe judges the columns of the transaction file: import the item columns too, so
        # that lines of one invoice that differ by item are not duplicates.
        tx_items = os.path.join(tmp, "retail_items.h5")
        run_kseg("import", "transactions", RETAIL, "-o", tx_items, "--quiet", *IMPORT_ARGS,
                 "--category", "StockCode", "--category", "Description")
        cases.run("dedupe over every column, returns netted", compare, tx_items, df, tmp,
                  "dedupe", {"dedupe": True, "returns": "net"},
                  ["CustomerID", "InvoiceDate", "Quantity", "UnitPrice", "InvoiceNo", "Country",
                   "StockCode", "Description"])

        cases.run("everything filtered out: error, no file", expect_failure, tmp,
                  [tx, "--min-price", "1e9"], ["no customer left after filtering",
                                               "below the minimum price"])
        cases.run("reference date before the last purchase: refused", expect_failure, tmp,
                  [tx, "--reference-date", "2011-06-01"],
                  ["reference date 2011-06-01 is before the last kept purchase",
                   "2011-12-09 12:50:00 UTC", "--allow-early-reference"])
        cases.run("unknown --where column lists the category columns", expect_failure, tmp,
                  [tx, "--where", "Contry=France"],
                  ["no category column 'Contry'", "category columns: Country"])
        cases.run("unknown --where value lists the values", expect_failure, tmp,
                  [tx, "--where", "Country=Narnia"],
                  ["column 'Country' has no value 'Narnia'", "United Kingdom", "France"])
        cases.run("a missing transaction group is named", expect_failure, tmp,
                  [tx + ":/nothing"], ["nothing"])
        cases.run("usage: --bins 1", expect_failure, tmp, [tx, "--bins", "1"], ["--bins"], 2)
        cases.run("usage: --ties", expect_failure, tmp, [tx, "--ties", "first"],
                  ["--ties: expected rank or value"], 2)
        cases.run("usage: --reference-date", expect_failure, tmp,
                  [tx, "--reference-date", "2011-02-30"], ["YYYY-MM-DD"], 2)

        def early_reference_allowed():
            out = os.path.join(tmp, "early.h5")
            result = run_kseg("rfm", tx, "-o", out, "--reference-date", "2011-06-01",
                              "--allow-early-reference")
            assert "warning: reference date 2011-06-01" in result.stderr, result.stderr
            with h5py.File(out, "r") as f:
                assert (f["rfm/recency"][:] < 0).any()
                assert f["rfm"].attrs["reference_date"] == "2011-06-01"
        cases.run("--allow-early-reference warns and writes", early_reference_allowed)

        def summary_adds_up():
            result = run_kseg("rfm", tx, "-o", os.path.join(tmp, "summary.h5"))
            lines = result.stdout.splitlines()
            total = [line for line in lines if line.strip().startswith("total")]
            assert total and "100.0%" in total[0], result.stdout
            table = [line for line in lines[lines.index(next(
                line for line in lines if line.strip().startswith("segment"))) + 1:]
                if "%" in line and not line.strip().startswith("total")]
            customer_shares = [float(line.split()[-3].rstrip("%")) for line in table]
            revenue_shares = [float(line.split()[-1].rstrip("%")) for line in table]
            assert round(sum(customer_shares), 6) == 100.0, customer_shares
            assert round(sum(revenue_shares), 6) == 100.0, revenue_shares
            revenues = [float(line.split()[-2]) for line in table]
            assert revenues == sorted(revenues, reverse=True), revenues
            assert "read twice" not in result.stdout, "a log in time order was read twice"
        cases.run("summary: shares add up to 100%, sorted by revenue", summary_adds_up)

        # The same lines in a fixed random order: every customer's invoices and days now come
        # out of order, so `kseg rfm` reads the file twice (the first pass assumes time order);
        # pandas reads the shuffled CSV and sums each customer's amounts in its row order.
        shuffled_csv = os.path.join(tmp, "shuffled.csv.gz")
        with gzip.open(RETAIL, "rt", newline="") as source:
            lines = source.readlines()
        body = lines[1:]
        order = np.random.default_rng(20261124).permutation(len(body))
        with gzip.open(shuffled_csv, "wt", newline="") as target:
            target.write(lines[0])
            target.writelines(body[i] for i in order)
        shuffled_tx = os.path.join(tmp, "shuffled.h5")
        run_kseg("import", "transactions", shuffled_csv, "-o", shuffled_tx, "--quiet",
                 *IMPORT_ARGS)
        shuffled = load_csv(shuffled_csv)
        assert not shuffled["InvoiceNo"].equals(df["InvoiceNo"]), "the lines were not shuffled"
        cases.run("shuffled lines: defaults", compare, shuffled_tx, shuffled, tmp,
                  "shuffled_defaults", {})
        cases.run("shuffled lines: days, returns netted, value ties", compare, shuffled_tx,
                  shuffled, tmp, "shuffled_days", {"frequency": "days", "returns": "net",
                                                   "ties": "value"})

        def shuffled_is_read_twice():
            for threads in ("1", "2"):
                result = run_kseg("rfm", shuffled_tx, "-o", os.path.join(tmp, "twice.h5"),
                                  "--threads", threads)
                assert "(read twice: some customer's invoices or days are out of order)" in \
                    result.stdout, result.stdout
        cases.run("shuffled lines: the summary says the file was read twice",
                  shuffled_is_read_twice)
    cases.finish()


if __name__ == "__main__":
    main()
