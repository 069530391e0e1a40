"""`kseg import transactions` and `kseg generate transactions` end to end: the Online Retail file
against its published facts and, row by row, against pandas reading the same CSV (pandas is the
oracle); CSV edge cases (quotes, CRLF, BOM, gzip, text ids, rejected rows with line numbers);
one-line errors that leave no file behind; and the generator's determinism and plausibility."""
import gzip
import os
import sys

import h5py
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import run_kseg, run_cases  # noqa: E402

SOURCE_DIR = os.environ.get("KSEG_SOURCE_DIR",
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RETAIL = os.path.join(SOURCE_DIR, "..", "shared", "datasets", "online_retail",
                      "online_retail.csv.gz")
RETAIL_ARGS = ["--customer", "CustomerID", "--time", "InvoiceDate", "--quantity", "Quantity",
               "--price", "UnitPrice", "--invoice", "InvoiceNo", "--category", "Country"]


# ---------------------------------------------------------------- helpers

def texts(dataset):
    return np.array([v.decode() if isinstance(v, bytes) else v for v in dataset[:]], dtype=object)


def load(path):
    """The /transactions group as a dict of numpy arrays; dictionaries decoded under 'dict:'."""
    out = {}
    with h5py.File(path, "r") as f:
        g = f["transactions"]
        for name, item in g.items():
            if isinstance(item, h5py.Dataset):
                out[name] = item[:]
        if "dictionaries" in g:
            for name, item in g["dictionaries"].items():
                out["dict:" + name] = texts(item)
        out["attrs"] = dict(g.attrs)
        out["time_unit"] = g["time"].attrs.get("unit")
        out["kinds"] = {name: item.attrs.get("kind") for name, item in g.items()
                        if isinstance(item, h5py.Dataset)}
    return out


def write_csv(path, text, compress=False, encoding="utf-8"):
    data = text.encode(encoding) if isinstance(text, str) else text
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return path


def import_csv(tmp, name, text, *args, compress=False, check=True):
    src = write_csv(os.path.join(tmp, name), text, compress=compress)
    out = os.path.join(tmp, name + ".h5")
    result = run_kseg("import", "transactions", src, "-o", out, *args, check=check)
    return result, out


def expect_failure(tmp, args, fragments, code=1):
    before = set(os.listdir(tmp))
    result = run_kseg(*args, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, f"exit {result.returncode}, expected {code}: {result.stderr}"
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    for fragment in fragments:
        assert fragment in lines[0], f"'{fragment}' not in: {lines[0]}"
    created = sorted(set(os.listdir(tmp)) - before)
    assert not created, f"files left behind: {created}"
    return lines[0]


def utc_seconds(series, fmt=None):
    times = pd.to_datetime(series, format=fmt)
    return ((times - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


SIMPLE = ("id,when,qty,price,inv,country\n"
          "1,2024-01-02,2,1.5,100,DE\n"
          "2,2024-01-03 10:00:00,1,2.25,101,FR\n"
          "1,2024-01-04T11:30,3,0.5,C102,DE\n")
SIMPLE_ARGS = ["--customer", "id", "--time", "when", "--quantity", "qty", "--price", "price",
               "--invoice", "inv", "--category", "country"]


# ---------------------------------------------------------------- Online Retail

def case_online_retail(tmp):
    assert os.path.exists(RETAIL), (
        f"the Online Retail data set is missing: {os.path.abspath(RETAIL)} (expected the shared "
        "datasets beside the checkout, see ../shared/datasets/README.md)")
    out = os.path.join(tmp, "retail.h5")
    result = run_kseg("import", "transactions", RETAIL, "-o", out, *RETAIL_ARGS)
    t = load(out)

    # The published facts (datasets/README.md).
    n = 541909
    assert t["attrs"]["rows"] == n and len(t["customer_id"]) == n, t["attrs"]
    assert t["attrs"]["rejected_rows"] == 0
    assert len(t["attrs"]["rejected_lines_sample"]) == 0
    assert t["attrs"]["source"] == RETAIL
    assert t["time_unit"] == "s"
    valid = t["customer_valid"].astype(bool)
    assert int((~valid).sum()) == 135080
    assert len(np.unique(t["customer_id"][valid])) == 4372
    assert np.all(t["customer_id"][~valid] == -1)
    assert len(t["dict:invoice"]) == 25900 and len(np.unique(t["invoice"])) == 25900
    assert len(t["dict:Country"]) == 38 and t["kinds"]["Country"] == "category"
    invoice_text = t["dict:invoice"][t["invoice"]]
    c_prefix = np.array([s.startswith("C") for s in invoice_text])
    negative = t["quantity"] < 0
    assert int(c_prefix.sum()) == 9288, int(c_prefix.sum())
    assert int(negative.sum()) == 10624, int(negative.sum())
    assert np.array_equal(t["cancelled"].astype(bool), c_prefix | negative)
    for fragment in ["541909", "135080", "4372 distinct", "25900 distinct",
                     "invoice starting with 'C': 9288", "negative quantity: 10624",
                     "38 distinct values", "2010-12-01 08:26:00 .. 2011-12-09 12:50:00 UTC"]:
        assert fragment in result.stdout, f"'{fragment}' not in the summary:\n{result.stdout}"

    # Row by row against pandas reading the same CSV (text kept as text; floats parsed by
    # Python's correctly rounded float()).
    df = pd.read_csv(RETAIL, dtype=str, keep_default_na=False)
    assert len(df) == n
    ids = df["CustomerID"].to_numpy(object)
    has_id = ids != ""
    assert np.array_equal(valid, has_id)
    expected_ids = np.array([int(float(v)) for v in ids[has_id]], dtype=np.int64)
    assert np.array_equal(t["customer_id"][valid], expected_ids)
    assert np.array_equal(t["time"], utc_seconds(df["InvoiceDate"], "%Y-%m-%d %H:%M:%S"))
    quantity = np.array([float(v) for v in df["Quantity"]])
    price = np.array([float(v) for v in df["UnitPrice"]])
    assert np.array_equal(t["quantity"], quantity)
    assert np.array_equal(t["price"], price)
    assert np.array_equal(t["amount"], quantity * price), "amount != Quantity * UnitPrice"
    assert np.array_equal(invoice_text, df["InvoiceNo"].to_numpy(object))
    assert np.array_equal(t["dict:Country"][t["Country"]], df["Country"].to_numpy(object))
    # Dictionaries are in first-seen order.
    first_seen = list(dict.fromkeys(df["Country"]))
    assert list(t["dict:Country"]) == first_seen


# ---------------------------------------------------------------- CSV edge cases

def case_values_and_layout(tmp):
    result, out = import_csv(tmp, "simple.csv", SIMPLE, *SIMPLE_ARGS)
    t = load(out)
    assert list(t["customer_id"]) == [1, 2, 1]
    assert list(t["time"]) == [1704153600, 1704276000, 1704367800]
    assert list(t["amount"]) == [3.0, 2.25, 1.5]
    assert list(t["invoice"]) == [0, 1, 2] and list(t["dict:invoice"]) == ["100", "101", "C102"]
    assert list(t["cancelled"]) == [0, 0, 1]
    assert list(t["dict:country"][t["country"]]) == ["DE", "FR", "DE"]
    assert t["customer_valid"].dtype == np.uint8 and t["cancelled"].dtype == np.uint8
    assert t["country"].dtype == np.int32 and t["time"].dtype == np.int64
    assert t["attrs"]["customer_id_encoding"] == "integer"
    assert "rows read          3" in result.stdout


def case_quotes_crlf_bom(tmp):
    text = ("\ufeffid,note,when,amount\r\n"
            "7,\"a, b\",2024-01-01,1\r\n"
            "8,\"line one\r\nline two\",2024-01-02,2\r\n"
            "9,\"say \"\"hi\"\"\",2024-01-03,3\r\n"
            "10,plain,not-a-date,4\r\n")
    result, out = import_csv(tmp, "quoted.csv", text, "--customer", "id", "--time", "when",
                             "--amount", "amount", "--category", "note")
    t = load(out)
    assert list(t["customer_id"]) == [7, 8, 9]
    assert list(t["dict:note"]) == ["a, b", "line one\r\nline two", 'say "hi"']
    # The bad date is on physical line 6: the quoted newline makes record 3 span lines 3-4.
    assert list(t["attrs"]["rejected_lines_sample"]) == [6], t["attrs"]
    assert "lines 6" in result.stdout and "not a time" in result.stdout
    assert "1 of 4 rows were not imported" in result.stderr


def case_gzip_equals_plain(tmp):
    rows = [f"{i % 97},2024-02-{1 + i % 28:02d} 12:{i % 60:02d}:00,{i % 5},{(i % 13) * 0.25},"
            f"{1000 + i // 3},{'ABC'[i % 3]}" for i in range(5000)]
    text = "id,when,qty,price,inv,country\n" + "\n".join(rows) + "\n"
    _, plain = import_csv(tmp, "plain.csv", text, *SIMPLE_ARGS, "--block-rows", "777")
    _, packed = import_csv(tmp, "packed.csv.gz", text, *SIMPLE_ARGS, compress=True)
    a, b = load(plain), load(packed)
    for key in ["customer_id", "customer_valid", "time", "amount", "quantity", "price", "invoice",
                "cancelled", "country", "dict:country"]:
        assert np.array_equal(a[key], b[key]), key
    assert a["attrs"]["invoice_encoding"] == "integer"
    assert list(a["invoice"][:4]) == [1000, 1000, 1000, 1001]


def case_float_and_text_ids(tmp):
    _, out = import_csv(tmp, "float.csv", "c,t,a\n17850.0,0,1\n,1,2\n12.0,2,3\n",
                        "--customer", "c", "--time", "t", "--amount", "a")
    t = load(out)
    assert list(t["customer_id"]) == [17850, -1, 12] and list(t["customer_valid"]) == [1, 0, 1]
    assert list(t["time"]) == [0, 1, 2]
    _, out = import_csv(tmp, "text.csv", "c,t,a\nbob,0,1\n17850.5,1,2\nbob,2,3\nann,3,4\n",
                        "--customer", "c", "--time", "t", "--amount", "a")
    t = load(out)
    assert list(t["customer_id"]) == [0, 1, 0, 2]
    assert list(t["dict:customer_id"]) == ["bob", "17850.5", "ann"]
    assert t["attrs"]["customer_id_encoding"] == "dictionary"
    # Integer ids with a fractional one: that row is rejected, the others stay integers.
    result, out = import_csv(tmp, "frac.csv", "c,t,a\n1,0,1\n2.5,1,2\n3,2,3\n",
                             "--customer", "c", "--time", "t", "--amount", "a")
    t = load(out)
    assert list(t["customer_id"]) == [1, 3] and list(t["attrs"]["rejected_lines_sample"]) == [3]
    assert "not an integral id" in result.stdout


def case_rejections(tmp):
    lines = ["c,t,q,p"] + [f"{i},2024-01-01,1,2" for i in range(20)]
    lines[3] = "3,2024-02-30,1,2"          # no such day
    lines[5] = "5,2024-01-01,x,2"          # bad number
    lines[8] = "8,2024-01-01,1e300,1e300"  # overflow
    lines[9] = "9,2024-01-01,1"            # too few fields
    lines[12] = "12,2024-01-01,2e8,1e8"    # |amount| > 1e15
    lines[15] = "15,2024-01-01,1,"         # empty price
    result, out = import_csv(tmp, "bad.csv", "\n".join(lines) + "\n", "--customer", "c", "--time",
                             "t", "--quantity", "q", "--price", "p")
    t = load(out)
    assert t["attrs"]["rejected_rows"] == 6 and t["attrs"]["rows"] == 14
    assert list(t["attrs"]["rejected_lines_sample"]) == [4, 6, 9, 10, 13]
    assert "rows rejected      6 (lines 4, 6, 9, 10, 13, ...; first: line 4: t: not a time: " \
           "'2024-02-30')" in result.stdout, result.stdout
    assert "6 of 20 rows were not imported" in result.stderr


def case_time_formats_and_delimiters(tmp):
    _, out = import_csv(tmp, "fmt.csv", "c;t;a\n1;02/01/2024 13:05;1\n2;31/12/1969 23:59;1\n",
                        "--customer", "c", "--time", "t", "--amount", "a", "--delimiter", ";",
                        "--time-format", "%d/%m/%Y %H:%M")
    assert list(load(out)["time"]) == [1704200700, -60]
    _, out = import_csv(tmp, "tab.tsv", "c\tt\ta\n1\t1700000000\t1\n"
                        "2\t2024-01-01T00:00:00+01:00\t1\n3\t2024-01-01 00:00Z\t1\n",
                        "--customer", "c", "--time", "t", "--amount", "a", "--delimiter", "tab")
    assert list(load(out)["time"]) == [1700000000, 1704063600, 1704067200]


def case_generated_log_round_trip(tmp):
    """A log written by `kseg generate transactions`, exported to CSV with pandas and imported
    back, gives the same columns."""
    gen = os.path.join(tmp, "gen.h5")
    run_kseg("generate", "transactions", "--transactions", 20000, "--customers", 2000, "-o", gen,
             "-q")
    g = load(gen)
    df = pd.DataFrame({"customer": g["customer_id"], "time": g["time"],
                       "quantity": g["quantity"], "price": g["price"], "invoice": g["invoice"],
                       "country": g["dict:country"][g["country"]]})
    csv = os.path.join(tmp, "gen.csv.gz")
    df.to_csv(csv, index=False)
    out = os.path.join(tmp, "back.h5")
    run_kseg("import", "transactions", csv, "-o", out, "--customer", "customer", "--time", "time",
             "--quantity", "quantity", "--price", "price", "--invoice", "invoice",
             "--category", "country", "-q")
    t = load(out)
    for key in ["customer_id", "time", "quantity", "price", "invoice", "cancelled"]:
        assert np.array_equal(t[key], g[key]), key
    assert np.array_equal(t["amount"], g["quantity"] * g["price"])
    assert np.array_equal(t["dict:country"][t["country"]], g["dict:country"][g["country"]])


# ---------------------------------------------------------------- errors

def case_missing_column(tmp):
    src = write_csv(os.path.join(tmp, "m.csv"), SIMPLE)
    tmp_out = os.path.join(tmp, "out")
    os.mkdir(tmp_out)
    line = expect_failure(tmp_out, ["import", "transactions", src, "-o",
                                    os.path.join(tmp_out, "x.h5"), "--customer", "CustID",
                                    "--time", "when", "--amount", "qty"],
                          ["'CustID'", "id, when, qty, price, inv, country"])
    assert "customer column" in line


def case_empty_and_header_only(tmp):
    out_dir = os.path.join(tmp, "out")
    os.mkdir(out_dir)
    args = ["--customer", "id", "--time", "when", "--amount", "qty"]
    for name, text, fragment in [("empty.csv", "", "empty file"),
                                 ("bom.csv", "\ufeff\n\n", "empty file"),
                                 ("header.csv", "id,when,qty\n", "no data rows"),
                                 ("header.csv.gz", "id,when,qty\r\n", "no data rows")]:
        src = write_csv(os.path.join(tmp, name), text, compress=name.endswith(".gz"))
        expect_failure(out_dir, ["import", "transactions", src, "-o",
                                 os.path.join(out_dir, "x.h5"), *args], [name, fragment])


def case_bad_input_files(tmp):
    out_dir = os.path.join(tmp, "out")
    os.mkdir(out_dir)
    args = ["--customer", "id", "--time", "when", "--amount", "qty"]
    out = os.path.join(out_dir, "x.h5")
    expect_failure(out_dir, ["import", "transactions", os.path.join(tmp, "nope.csv"), "-o", out,
                             *args], ["nope.csv", "no such file"])
    unterminated = write_csv(os.path.join(tmp, "open.csv"), 'id,when,qty\n1,"2024-01-01,3\n2,x,1\n')
    expect_failure(out_dir, ["import", "transactions", unterminated, "-o", out, *args],
                   ["open.csv", "line 2", "quoted field is not closed"])
    whole = gzip.compress(("id,when,qty\n" + "1,2024-01-01,1\n" * 20000).encode())
    truncated = write_csv(os.path.join(tmp, "cut.csv.gz"), whole[:len(whole) // 2])
    expect_failure(out_dir, ["import", "transactions", truncated, "-o", out, *args],
                   ["cut.csv.gz", "truncated"])
    all_bad = write_csv(os.path.join(tmp, "allbad.csv"), "id,when,qty\n1,x,1\n")
    expect_failure(out_dir, ["import", "transactions", all_bad, "-o", out, *args],
                   ["none of the 1 data rows", "line 2"])


def case_usage_errors(tmp):
    src = write_csv(os.path.join(tmp, "u.csv"), SIMPLE)
    out = os.path.join(tmp, "u.h5")
    for args, fragment in [
            (["--time", "when", "--amount", "qty"], "--customer"),
            (["--customer", "id", "--amount", "qty"], "--time"),
            (["--customer", "id", "--time", "when"], "--amount"),
            (["--customer", "id", "--time", "when", "--quantity", "qty"], "--price"),
            (["--customer", "id", "--time", "when", "--amount", "qty", "--delimiter", "ab"],
             "--delimiter"),
            (["--customer", "id", "--time", "when", "--amount", "qty", "--gzip", "11"], "--gzip")]:
        expect_failure(tmp, ["import", "transactions", src, "-o", out, *args], [fragment], code=2)
    expect_failure(tmp, ["import", "customers", src], ["unknown kind"], code=2)
    expect_failure(tmp, ["import", "transactions", "-o", out, "--customer", "id"], ["input file"],
                   code=2)
    assert "--customer COL" in run_kseg("import", "transactions", "--help").stdout


def case_existing_output_replaced_only_on_success(tmp):
    _, out = import_csv(tmp, "first.csv", SIMPLE, *SIMPLE_ARGS)
    before = load(out)
    bad = write_csv(os.path.join(tmp, "bad.csv"), "id,when\n1,2024-01-01\n")
    result = run_kseg("import", "transactions", bad, "-o", out, "--customer", "id", "--time",
                      "when", "--amount", "qty", check=False)
    assert result.returncode == 1 and "'qty'" in result.stderr
    assert np.array_equal(load(out)["customer_id"], before["customer_id"])


# ---------------------------------------------------------------- generator

def case_generate_determinism(tmp):
    paths = []
    for name, extra in [("a.h5", ["--threads", "1"]), ("b.h5", ["--threads", "4"]),
                        ("c.h5", ["--seed", "2"])]:
        path = os.path.join(tmp, name)
        run_kseg("generate", "transactions", "--transactions", 50000, "--customers", 5000,
                 "-o", path, "-q", *extra)
        paths.append(load(path))
    a, b, c = paths
    for key in ["customer_id", "time", "amount", "quantity", "price", "invoice", "cancelled",
                "channel", "country", "category"]:
        assert np.array_equal(a[key], b[key]), f"{key} depends on the thread count"
    assert not np.array_equal(a["customer_id"], c["customer_id"]), "seed has no effect"


def case_generate_plausible(tmp):
    path = os.path.join(tmp, "gen.h5")
    result = run_kseg("generate", "transactions", "--transactions", 400000, "--customers", 40000,
                      "--days", 365, "--start", "2024-01-01", "-o", path)
    t = load(path)
    n = 400000
    assert t["attrs"]["rows"] == n and t["time_unit"] == "s"
    assert np.all(np.diff(t["time"]) >= 0), "rows are not in time order"
    start = 1704067200
    assert t["time"][0] >= start and t["time"][-1] < start + 365 * 86400
    ids, counts = np.unique(t["customer_id"], return_counts=True)
    assert ids.min() >= 100000 and ids.max() < 140000
    counts = np.sort(counts)[::-1]
    top = counts[:max(1, len(counts) // 100)].sum() / n
    assert top > 0.10, f"top 1% of customers hold only {top:.1%} of rows"
    returns = t["cancelled"].mean()
    assert 0.01 < returns < 0.03, returns
    assert np.all((t["amount"] < 0) == (t["cancelled"] == 1))
    assert np.array_equal(t["amount"], t["quantity"] * t["price"])
    per_customer = pd.DataFrame({"c": t["customer_id"], "i": t["invoice"]}).groupby("c").i.nunique()
    assert (per_customer == 1).mean() > 0.15, "too few one-time buyers"
    assert list(t["dict:channel"]) == ["web", "store", "phone"]
    assert len(t["dict:country"]) == 10 and len(t["dict:category"]) == 8
    assert "generated 400000 transactions" in result.stdout


def main():
    run_cases(globals())


if __name__ == "__main__":
    main()
