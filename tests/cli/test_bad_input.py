"""Bad input to every kseg command (import, rfm, run, report, predict, generate, inspect, cluster):
damaged and foreign files, wrong types and shapes, non-finite numbers, awkward CSV, broken
configs. A refused input must give exit status 1 (2 for a bad command line), exactly one line on
stderr, "kseg COMMAND: ...", that names the file and where in it (dataset, row or line, column)
and what was expected, and leave no output and no temporary file. Inputs that look odd but are
valid (a BOM, CRLF line ends, quoted line breaks) must give the right result instead."""
import contextlib
import json
import os
import resource
import shutil
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import Cases, expect_failure, run_kseg, scratch_dir  # noqa: E402

# ---------------------------------------------------------------- helpers


def write_h5(path, **datasets):
    """Writes datasets into a new HDF5 file; '__' in a name is a '/'."""
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f[name.replace("__", "/")] = value
    return path


def write_file(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def copy(source, tmp, name=None):
    target = os.path.join(tmp, name or os.path.basename(source))
    shutil.copyfile(source, target)
    return target


@contextlib.contextmanager
def file_size_limit(limit):
    """Caps the size of any file kseg writes (inherited RLIMIT_FSIZE), so that a check that
    should refuse a huge output fails the test quickly instead of filling the disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def write_report_json(path, text):
    """A file that looks like a 'kseg run' result but holds text as /report/json."""
    with h5py.File(path, "w") as f:
        f["report/json"] = [text]
    return path


def texts(dataset):
    return [v.decode() if isinstance(v, bytes) else v for v in dataset[:]]


class Fixtures:
    """Small valid inputs, made once: a transaction log, a customer table, a cluster model and a
    'kseg run' result. Cases read them and write into their own scratch directory."""

    def __init__(self, directory):
        self.dir = directory
        self.tx = os.path.join(directory, "tx.h5")
        self.customers = os.path.join(directory, "customers.h5")
        self.model = os.path.join(directory, "model.h5")
        run_kseg("generate", "transactions", "--transactions", 3000, "--customers", 200,
                 "--seed", 1, "-o", self.tx, "-q")
        run_kseg("generate", "customers", "--n", 400, "--seed", 2, "-o", self.customers, "-q")
        run_kseg("cluster", self.customers, "-k", 3, "-o", self.model, "-q")
        config = write_file(os.path.join(directory, "run.yaml"), CUSTOMER_CONFIG.format(
            customers="customers.h5:/customers/features", extra=""))
        run_kseg("run", config, "-o", os.path.join(directory, "run"), "-q")
        self.result = os.path.join(directory, "run", "result.h5")


FIX = None

# Every column of a small transaction log, for hand-made /transactions groups.
N_TX = 12


def tx_columns(n=N_TX):
    return {"customer_id": np.arange(n, dtype=np.int64) % 4 + 1,
            "time": 1700000000 + 86400 * np.arange(n, dtype=np.int64),
            "amount": np.linspace(1.0, 20.0, n)}


def write_tx(path, **overrides):
    """A /transactions group from tx_columns() with some columns replaced (None removes)."""
    columns = tx_columns()
    columns.update(overrides)
    with h5py.File(path, "w") as f:
        g = f.create_group("transactions")
        for name, value in columns.items():
            if value is not None:
                g[name] = value
        if "time" in g:
            g["time"].attrs["unit"] = "s"
    return path


CSV_ARGS = ["--customer", "customer", "--time", "when", "--amount", "amount"]


def import_args(source, out, *extra):
    return ["import", "transactions", source, "-o", out, *CSV_ARGS, *extra]


def good_features(n=50, d=3):
    return np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)


def run_config(tmp, text, name="run.yaml"):
    return write_file(os.path.join(tmp, name), text)


CUSTOMER_CONFIG = """\
input:
  customers: {customers}
prepare:
  features: [recency_days, frequency, monetary]
cluster: {{k: 3, seed: 1}}
report: {{value: monetary, html: false}}
{extra}"""

# ---------------------------------------------------------------- damaged and foreign HDF5 files


def case_cluster_truncated_hdf5(tmp):
    data = open(FIX.customers, "rb").read()
    cut = write_file(os.path.join(tmp, "cut.h5"), data[:len(data) // 2])
    expect_failure(tmp, ["cluster", cut, "-k", 3, "-o", os.path.join(tmp, "out.h5")],
                   ["cut.h5", "truncated HDF5 file"])


def case_cluster_corrupt_gzip_chunk(tmp):
    """Damaged bytes inside one gzip chunk: the parallel decompression names the chunk by its
    rows and columns, whatever the thread count."""
    path = os.path.join(tmp, "in.h5")
    values = np.arange(3000, dtype=np.float32).reshape(1000, 3) % 17
    with h5py.File(path, "w") as f:
        f.create_dataset("customers/features", data=values, chunks=(100, 3), compression="gzip",
                         shuffle=True)
    with h5py.File(path, "r") as f:
        chunk = f["customers/features"].id.get_chunk_info_by_coord((200, 0))
    with open(path, "r+b") as f:
        f.seek(chunk.byte_offset + chunk.size // 3)
        damaged = bytes(b ^ 0x5A for b in f.read(16))
        f.seek(chunk.byte_offset + chunk.size // 3)
        f.write(damaged)
    for threads in (1, 2):
        expect_failure(tmp, ["cluster", path, "-k", 2, "--threads", threads, "-o",
                             os.path.join(tmp, "out.h5")],
                       ["in.h5:/customers/features", "chunk at rows [200, 300), columns [0, 3)",
                        "is corrupt"])


def case_rfm_truncated_hdf5(tmp):
    data = open(FIX.tx, "rb").read()
    cut = write_file(os.path.join(tmp, "cut.h5"), data[:len(data) // 2])
    expect_failure(tmp, ["rfm", cut, "-o", os.path.join(tmp, "out.h5")],
                   ["cut.h5", "truncated HDF5 file"])


def case_predict_signature_then_garbage(tmp):
    garbage = np.random.default_rng(3).bytes(4096)
    bad = write_file(os.path.join(tmp, "bad.h5"), b"\x89HDF\r\n\x1a\n" + garbage)
    expect_failure(tmp, ["predict", "--model", FIX.model, bad, "-o",
                         os.path.join(tmp, "out.h5")], ["bad.h5", "corrupt HDF5 file"])


def case_predict_corrupt_model(tmp):
    garbage = np.random.default_rng(4).bytes(8192)
    bad = write_file(os.path.join(tmp, "model.h5"), b"\x89HDF\r\n\x1a\n" + garbage)
    expect_failure(tmp, ["predict", "--model", bad, FIX.customers, "-o",
                         os.path.join(tmp, "out.h5")], ["model.h5", "corrupt HDF5 file"])


def case_inspect_random_bytes(tmp):
    bad = write_file(os.path.join(tmp, "noise.h5"), np.random.default_rng(5).bytes(10000))
    expect_failure(tmp, ["inspect", bad], ["noise.h5", "not an HDF5 file"])


def case_rfm_csv_instead_of_hdf5(tmp):
    csv = write_file(os.path.join(tmp, "tx.csv"), "customer,when,amount\n1,2024-01-01,3\n")
    expect_failure(tmp, ["rfm", csv, "-o", os.path.join(tmp, "out.h5")],
                   ["tx.csv", "not an HDF5 file"])


def case_report_text_file(tmp):
    text = write_file(os.path.join(tmp, "result.h5"), "this is not a result\n")
    expect_failure(tmp, ["report", text, "--json", os.path.join(tmp, "r.json")],
                   ["result.h5", "not an HDF5 file"])


def case_run_truncated_customer_table(tmp):
    data = open(FIX.customers, "rb").read()
    write_file(os.path.join(tmp, "cut.h5"), data[:len(data) // 2])
    config = run_config(tmp, CUSTOMER_CONFIG.format(customers="cut.h5:/customers/features",
                                                    extra=""))
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                   ["cut.h5", "truncated HDF5 file", "input.customers"])

# ---------------------------------------------------------------- wrong types and shapes


def case_cluster_string_column_in_group(tmp):
    # Without --columns a group's non-numeric datasets are not features (documented: every 1-D
    # numeric dataset but 'id'); asking for one by name is an error naming it and its type.
    path = os.path.join(tmp, "in.h5")
    with h5py.File(path, "w") as f:
        f["table/age"] = np.arange(20.0)
        f["table/city"] = np.array([b"Berlin", b"Paris"] * 10)
    expect_failure(tmp, ["cluster", f"{path}:/table", "-k", 2, "--columns", "age,city", "-o",
                         os.path.join(tmp, "out.h5")], ["in.h5", "/table", "city", "numeric"])


def case_run_string_feature(tmp):
    path = os.path.join(tmp, "c.h5")
    with h5py.File(path, "w") as f:
        f["customers/recency_days"] = np.arange(50.0)
        f["customers/frequency"] = np.arange(50.0)
        f["customers/monetary"] = np.array([b"12.5"] * 50)
    config = run_config(tmp, CUSTOMER_CONFIG.format(customers="c.h5:/customers", extra=""))
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                   ["c.h5", "monetary", "numeric"])


def case_cluster_compound_dataset(tmp):
    path = os.path.join(tmp, "in.h5")
    records = np.zeros(20, dtype=[("recency", "f8"), ("monetary", "f8")])
    write_h5(path, customers__features=records)
    expect_failure(tmp, ["cluster", path, "-k", 2, "-o", os.path.join(tmp, "out.h5")],
                   ["in.h5", "/customers/features"])


def case_rfm_string_amounts(tmp):
    path = write_tx(os.path.join(tmp, "tx.h5"),
                    amount=np.array([b"12.50"] * N_TX))
    expect_failure(tmp, ["rfm", path, "-o", os.path.join(tmp, "out.h5")],
                   ["tx.h5", "/transactions/amount", "float"])


def case_rfm_compound_time(tmp):
    times = np.zeros(N_TX, dtype=[("seconds", "i8"), ("zone", "i4")])
    path = write_tx(os.path.join(tmp, "tx.h5"), time=times)
    expect_failure(tmp, ["rfm", path, "-o", os.path.join(tmp, "out.h5")],
                   ["tx.h5", "/transactions/time"])


def case_rfm_two_dimensional_customer_id(tmp):
    path = write_tx(os.path.join(tmp, "tx.h5"),
                    customer_id=np.ones((N_TX, 2), dtype=np.int64))
    expect_failure(tmp, ["rfm", path, "-o", os.path.join(tmp, "out.h5")],
                   ["tx.h5", "/transactions/customer_id", "2 dimensions", "expected 1"])

# ---------------------------------------------------------------- NaN and infinity


def case_predict_nan_names_row_and_column(tmp):
    path = os.path.join(tmp, "in.h5")
    with h5py.File(FIX.customers, "r") as f:
        x = f["/customers/features"][:]
        columns = f["/customers/features"].attrs["columns"]
    x[123, 2] = np.nan
    with h5py.File(path, "w") as f:
        f["/customers/features"] = x
        f["/customers/features"].attrs["columns"] = columns
    expect_failure(tmp, ["predict", "--model", FIX.model, path, "-o",
                         os.path.join(tmp, "out.h5")], ["in.h5", "row 123", "monetary"])


def case_cluster_inf_in_column_group(tmp):
    path = os.path.join(tmp, "in.h5")
    monetary = np.arange(30.0)
    monetary[7] = -np.inf
    write_h5(path, table__recency=np.arange(30.0), table__monetary=monetary)
    expect_failure(tmp, ["cluster", f"{path}:/table", "-k", 2, "-o", os.path.join(tmp, "out.h5")],
                   ["in.h5", "row 7", "monetary"])


def case_rfm_nan_amount(tmp):
    amount = tx_columns()["amount"]
    amount[5] = np.nan
    path = write_tx(os.path.join(tmp, "tx.h5"), amount=amount)
    expect_failure(tmp, ["rfm", path, "-o", os.path.join(tmp, "out.h5")],
                   ["tx.h5", "/transactions/amount", "row 5"])


def case_rfm_inf_amount(tmp):
    amount = tx_columns()["amount"]
    amount[9] = np.inf
    path = write_tx(os.path.join(tmp, "tx.h5"), amount=amount)
    expect_failure(tmp, ["rfm", path, "-o", os.path.join(tmp, "out.h5")],
                   ["tx.h5", "/transactions/amount", "row 9"])


def case_rfm_float_times_with_nan(tmp):
    times = tx_columns()["time"].astype(np.float64)
    times[4] = np.nan
    path = write_tx(os.path.join(tmp, "tx.h5"), time=times)
    expect_failure(tmp, ["rfm", path, "-o", os.path.join(tmp, "out.h5")],
                   ["tx.h5", "/transactions/time"])


def case_run_nan_in_customer_table(tmp):
    path = os.path.join(tmp, "c.h5")
    with h5py.File(FIX.customers, "r") as f:
        x = f["/customers/features"][:]
        columns = f["/customers/features"].attrs["columns"]
    x[42, 1] = np.inf
    with h5py.File(path, "w") as f:
        f["/customers/features"] = x
        f["/customers/features"].attrs["columns"] = columns
    config = run_config(tmp, CUSTOMER_CONFIG.format(customers="c.h5:/customers/features",
                                                    extra=""))
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                   ["c.h5", "row 42", "frequency"])

# ---------------------------------------------------------------- empty, short and mismatched


def case_rfm_empty_transactions_group(tmp):
    path = os.path.join(tmp, "tx.h5")
    with h5py.File(path, "w") as f:
        f.create_group("transactions")
    expect_failure(tmp, ["rfm", path, "-o", os.path.join(tmp, "out.h5")],
                   ["tx.h5", "/transactions", "customer_id"])


def case_rfm_mismatched_column_lengths(tmp):
    path = write_tx(os.path.join(tmp, "tx.h5"), amount=np.ones(N_TX - 3))
    expect_failure(tmp, ["rfm", path, "-o", os.path.join(tmp, "out.h5")],
                   ["tx.h5", "amount", str(N_TX - 3), str(N_TX)])


def case_rfm_zero_rows(tmp):
    empty = {name: value[:0] for name, value in tx_columns().items()}
    path = write_tx(os.path.join(tmp, "tx.h5"), **empty)
    expect_failure(tmp, ["rfm", path, "-o", os.path.join(tmp, "out.h5")],
                   ["tx.h5", "/transactions", "no rows"])


def case_predict_mismatched_column_group(tmp):
    path = os.path.join(tmp, "in.h5")
    with h5py.File(FIX.customers, "r") as f:
        x = f["/customers/features"][:]
        columns = [c.decode() if isinstance(c, bytes) else c
                   for c in f["/customers/features"].attrs["columns"]]
    with h5py.File(path, "w") as f:
        for j, name in enumerate(columns):
            f[f"table/{name}"] = x[: 100 if name != "income" else 99, j]
    expect_failure(tmp, ["predict", "--model", FIX.model, f"{path}:/table", "-o",
                         os.path.join(tmp, "out.h5")], ["in.h5", "/table", "income"])


def case_predict_zero_rows(tmp):
    path = os.path.join(tmp, "in.h5")
    with h5py.File(FIX.customers, "r") as f:
        columns = f["/customers/features"].attrs["columns"]
        d = f["/customers/features"].shape[1]
    with h5py.File(path, "w") as f:
        f["/customers/features"] = np.zeros((0, d), dtype=np.float32)
        f["/customers/features"].attrs["columns"] = columns
    expect_failure(tmp, ["predict", "--model", FIX.model, path, "-o",
                         os.path.join(tmp, "out.h5")], ["in.h5", "/customers/features", "empty",
                                                        "at least one row"])


def case_run_empty_column_group(tmp):
    path = os.path.join(tmp, "c.h5")
    with h5py.File(path, "w") as f:
        f.create_group("customers")
    config = run_config(tmp, CUSTOMER_CONFIG.format(customers="c.h5:/customers", extra=""))
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                   ["c.h5", "/customers"])

# ---------------------------------------------------------------- CSV import


def case_import_non_utf8_category_rejected_with_line(tmp):
    # Latin-1 'Mnchen' in a category: the dictionaries are UTF-8 strings, so the import stops
    # at the first such line (naming column and byte) rather than write text no reader can decode.
    src = write_file(os.path.join(tmp, "latin1.csv"),
                     b"customer,when,amount,city\n1,2024-01-01,3,Berlin\n"
                     b"2,2024-01-02,4,M\xfcnchen\n")
    expect_failure(tmp, import_args(src, os.path.join(tmp, "out.h5"), "--category", "city"),
                   ["latin1.csv", "line 3", "city", "UTF-8"])


def case_import_non_utf8_customer_id_rejected_with_line(tmp):
    src = write_file(os.path.join(tmp, "ids.csv"),
                     b"customer,when,amount\nanna,2024-01-01,3\nbob,2024-01-01,3\n"
                     b"J\xf6rg,2024-01-02,4\n")
    expect_failure(tmp, import_args(src, os.path.join(tmp, "out.h5")),
                   ["ids.csv", "line 4", "customer", "UTF-8"])


def case_import_non_utf8_in_unmapped_column_accepted(tmp):
    src = write_file(os.path.join(tmp, "notes.csv"),
                     b"customer,when,amount,note\n1,2024-01-01,3,caf\xe9\n2,2024-01-02,4,ok\n")
    out = os.path.join(tmp, "out.h5")
    run_kseg(*import_args(src, out), "-q")
    with h5py.File(out, "r") as f:
        assert list(f["/transactions/customer_id"][:]) == [1, 2]


def case_import_bom_before_header_accepted(tmp):
    # The BOM must not become part of the first column's name: --customer customer matches.
    src = write_file(os.path.join(tmp, "bom.csv"),
                     "\ufeffcustomer,when,amount\n7,2024-01-01,3\n8,2024-01-02,4\n".encode())
    out = os.path.join(tmp, "out.h5")
    run_kseg(*import_args(src, out), "-q")
    with h5py.File(out, "r") as f:
        assert list(f["/transactions/customer_id"][:]) == [7, 8]
        assert list(f["/transactions/amount"][:]) == [3.0, 4.0]


def case_import_crlf_equals_lf(tmp):
    rows = ["customer,when,amount,city"] + [
        f"{i % 7},2024-01-{1 + i % 28:02d} 10:{i % 60:02d},{i * 0.5},{'ABC'[i % 3]}"
        for i in range(200)]
    lf = write_file(os.path.join(tmp, "lf.csv"), "\n".join(rows) + "\n")
    crlf = write_file(os.path.join(tmp, "crlf.csv"), "\r\n".join(rows) + "\r\n")
    outputs = []
    for source in (lf, crlf):
        out = source + ".h5"
        run_kseg(*import_args(source, out, "--category", "city"), "-q")
        outputs.append(out)
    with h5py.File(outputs[0], "r") as a, h5py.File(outputs[1], "r") as b:
        for name in ("customer_id", "time", "amount", "city"):
            assert np.array_equal(a["transactions"][name][:], b["transactions"][name][:]), name
        assert texts(a["/transactions/dictionaries/city"]) == ["A", "B", "C"]
        assert texts(b["/transactions/dictionaries/city"]) == ["A", "B", "C"]


def case_import_quoted_newlines_keep_line_numbers(tmp):
    # Records 2 and 3 span two and three physical lines; the bad date is on physical line 8.
    text = ("customer,when,amount,note\n"
            "1,2024-01-01,3,\"two\nlines\"\n"
            "2,2024-01-02,4,\"three\n\nlines\"\n"
            "3,2024-01-03,5,plain\n"
            "4,2024-13-01,6,plain\n")
    src = write_file(os.path.join(tmp, "quoted.csv"), text)
    out = os.path.join(tmp, "out.h5")
    result = run_kseg(*import_args(src, out, "--category", "note"), check=False)
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and "line 8" in warning[0], warning
    with h5py.File(out, "r") as f:
        assert list(f["/transactions/customer_id"][:]) == [1, 2, 3]
        assert texts(f["/transactions/dictionaries/note"]) == ["two\nlines", "three\n\nlines",
                                                               "plain"]
        assert list(f["/transactions"].attrs["rejected_lines_sample"]) == [8]


def bad_date_case(tmp, date, fragment):
    src = write_file(os.path.join(tmp, "dates.csv"),
                     f"customer,when,amount\n1,{date},3\n")
    expect_failure(tmp, import_args(src, os.path.join(tmp, "out.h5")),
                   ["dates.csv", "line 2", "when", date, fragment])


def case_import_year_zero(tmp):
    bad_date_case(tmp, "0000-06-01", "not a time")


def case_import_year_99999(tmp):
    bad_date_case(tmp, "99999-06-01", "not a time")


def case_import_month_13(tmp):
    bad_date_case(tmp, "2023-13-01", "not a time")


def case_import_february_30(tmp):
    bad_date_case(tmp, "2023-02-30", "not a time")


def case_import_int64_overflow_id_is_dictionary_encoded(tmp):
    src = write_file(os.path.join(tmp, "big.csv"),
                     "customer,when,amount\n99999999999999999999,2024-01-01,3\n"
                     "17,2024-01-02,4\n99999999999999999999,2024-01-03,5\n")
    out = os.path.join(tmp, "out.h5")
    run_kseg(*import_args(src, out), "-q")
    with h5py.File(out, "r") as f:
        g = f["transactions"]
        assert g.attrs["customer_id_encoding"] == "dictionary"
        assert list(g["customer_id"][:]) == [0, 1, 0]
        assert texts(g["dictionaries/customer_id"]) == ["99999999999999999999", "17"]


def case_import_duplicate_mapped_column(tmp):
    src = write_file(os.path.join(tmp, "dup.csv"),
                     "customer,when,amount,amount\n1,2024-01-01,3,4\n")
    expect_failure(tmp, import_args(src, os.path.join(tmp, "out.h5")),
                   ["dup.csv", "'amount'", "2 times"])


def case_import_duplicate_unmapped_column_accepted(tmp):
    src = write_file(os.path.join(tmp, "dup.csv"),
                     "customer,when,amount,note,note\n1,2024-01-01,3,a,b\n")
    out = os.path.join(tmp, "out.h5")
    run_kseg(*import_args(src, out), "-q")
    with h5py.File(out, "r") as f:
        assert list(f["/transactions/amount"][:]) == [3.0]


def case_import_output_in_missing_directory(tmp):
    src = write_file(os.path.join(tmp, "ok.csv"), "customer,when,amount\n1,2024-01-01,3\n")
    expect_failure(tmp, import_args(src, os.path.join(tmp, "nodir", "out.h5")),
                   ["nodir", "does not exist"])


def case_import_output_is_input(tmp):
    src = write_file(os.path.join(tmp, "ok.csv"), "customer,when,amount\n1,2024-01-01,3\n")
    before = open(src, "rb").read()
    expect_failure(tmp, import_args(src, src), ["ok.csv", "input"])
    assert open(src, "rb").read() == before


def case_import_output_under_a_file(tmp):
    # A regular file used as a directory: not writable even for root (chmod would not stop root).
    src = write_file(os.path.join(tmp, "ok.csv"), "customer,when,amount\n1,2024-01-01,3\n")
    expect_failure(tmp, import_args(src, os.path.join(src, "out.h5")),
                   ["ok.csv/out.h5", "not a directory"])

# ---------------------------------------------------------------- kseg rfm options and map files


def case_rfm_where_unknown_column(tmp):
    expect_failure(tmp, ["rfm", FIX.tx, "-o", os.path.join(tmp, "out.h5"), "--where",
                         "colour=red"], ["colour", "channel"])


def case_rfm_where_unknown_value(tmp):
    expect_failure(tmp, ["rfm", FIX.tx, "-o", os.path.join(tmp, "out.h5"), "--where",
                         "channel=telegraph"], ["'channel'", "'telegraph'", "web"])


def case_rfm_bins_zero(tmp):
    expect_failure(tmp, ["rfm", FIX.tx, "-o", os.path.join(tmp, "out.h5"), "--bins", 0],
                   ["--bins", "'0'"], code=2)


def case_rfm_bins_one(tmp):
    expect_failure(tmp, ["rfm", FIX.tx, "-o", os.path.join(tmp, "out.h5"), "--bins", 1],
                   ["--bins", "'1'"], code=2)


def case_rfm_bins_huge(tmp):
    expect_failure(tmp, ["rfm", FIX.tx, "-o", os.path.join(tmp, "out.h5"), "--bins",
                         "99999999999999999999"], ["--bins"], code=2)


def case_rfm_map_overlap(tmp):
    path = write_file(os.path.join(tmp, "map.txt"),
                      "A | 1-3 | * \nB | 3-5 | 1-2\nC | 4-5 | 3-5\n")
    expect_failure(tmp, ["rfm", FIX.tx, "-o", os.path.join(tmp, "out.h5"), "--map", path],
                   ["map.txt", "R=3 F=1", "'A'", "'B'"])


def case_rfm_map_hole(tmp):
    path = write_file(os.path.join(tmp, "map.txt"),
                      "A | 1-2 | * \nB | 3-5 | 1-2\nC | 4-5 | 3-5\n")
    expect_failure(tmp, ["rfm", FIX.tx, "-o", os.path.join(tmp, "out.h5"), "--map", path],
                   ["map.txt", "R=3 F=3-5", "no segment"])


def case_rfm_map_is_directory(tmp):
    directory = os.path.join(tmp, "maps")
    os.mkdir(directory)
    expect_failure(tmp, ["rfm", FIX.tx, "-o", os.path.join(tmp, "out.h5"), "--map", directory],
                   ["maps", "directory"])


def case_rfm_output_is_input(tmp):
    tx = copy(FIX.tx, tmp)
    before = open(tx, "rb").read()
    expect_failure(tmp, ["rfm", tx, "-o", tx], ["tx.h5", "input"])
    assert open(tx, "rb").read() == before


def case_rfm_csv_in_missing_directory(tmp):
    expect_failure(tmp, ["rfm", FIX.tx, "-o", os.path.join(tmp, "out.h5"), "--csv",
                         os.path.join(tmp, "nodir", "rfm.csv")], ["nodir/rfm.csv", "does not exist"])


def case_rfm_output_under_proc(tmp):
    expect_failure(tmp, ["rfm", FIX.tx, "-o", "/proc/kseg-test/out.h5"], ["/proc/kseg-test"])

# ---------------------------------------------------------------- kseg run configs and rules


def case_run_rules_file_is_directory(tmp):
    os.mkdir(os.path.join(tmp, "rules.yaml"))
    config = run_config(tmp, CUSTOMER_CONFIG.format(customers=FIX.customers
                                                    + ":/customers/features",
                                                    extra="label: {rules: rules.yaml}\n"))
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                   ["rules.yaml", "directory"])


def case_run_rules_not_yaml(tmp):
    write_file(os.path.join(tmp, "rules.yaml"),
               "segments:\n  - name: A\n    when: {monetary: high}\nfallback: \"B\n")
    config = run_config(tmp, CUSTOMER_CONFIG.format(customers=FIX.customers
                                                    + ":/customers/features",
                                                    extra="label: {rules: rules.yaml}\n"))
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                   ["rules.yaml:", "line 4", "quoted scalar"])


def case_run_config_not_yaml(tmp):
    config = run_config(tmp, "input:\n  customers: c.h5\n\tcluster: 3\n")
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")], ["run.yaml:3"])


def case_run_config_binary(tmp):
    config = write_file(os.path.join(tmp, "run.yaml"), b"\x00\x01\x02\xff\xfe garbage")
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")], ["run.yaml"])


def case_run_config_unknown_key(tmp):
    config = run_config(tmp, CUSTOMER_CONFIG.format(customers=FIX.customers
                                                    + ":/customers/features",
                                                    extra="prepare_more: {scaling: none}\n"))
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                   ["run.yaml:7:1", "'prepare_more'", "prepare"])


def case_run_config_input_missing(tmp):
    config = run_config(tmp, CUSTOMER_CONFIG.format(customers="gone.h5:/customers/features",
                                                    extra=""))
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                   ["gone.h5", "no such file", "input.customers"])


def case_run_config_transactions_csv_missing(tmp):
    config = run_config(tmp, "input:\n  transactions: gone.csv\nimport:\n  customer: c\n"
                             "  time: t\n  amount: a\ncluster: {k: 2}\n")
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                   ["gone.csv", "no such file", "config section 'import'"])


def case_run_rfm_step_error_is_one_line(tmp):
    config = run_config(tmp, f"input:\n  transactions: {FIX.tx}\nrfm:\n"
                             "  where: {channel: [telegraph]}\ncluster: {k: 2}\n")
    expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                   ["'telegraph'", "channel", "config section 'rfm'"])


def case_run_unknown_category_scheme_is_one_line(tmp):
    config = run_config(tmp, f"input:\n  transactions: {FIX.tx}\ncluster: {{k: 2}}\n"
                             "schemes:\n  categories: [colour]\nreport: {html: false}\n")
    # The scheme is checked after the RFM step, whose complete result stays (README: the
    # output directory keeps the complete files of earlier steps); nothing else may appear.
    line = expect_failure(tmp, ["run", config, "-o", os.path.join(tmp, "out")],
                          ["run.yaml:5", "colour", "channel"], kept=["out", "out/rfm.h5"])
    assert "(it has: " in line, line



def case_run_config_missing(tmp):
    expect_failure(tmp, ["run", os.path.join(tmp, "nothing.yaml"), "-o",
                         os.path.join(tmp, "out")], ["nothing.yaml"])


def case_run_output_under_a_file(tmp):
    blocker = write_file(os.path.join(tmp, "blocker"), "a file, not a directory\n")
    config = run_config(tmp, CUSTOMER_CONFIG.format(customers=FIX.customers
                                                    + ":/customers/features", extra=""))
    expect_failure(tmp, ["run", config, "-o", os.path.join(blocker, "out")],
                   ["blocker/out", "Not a directory"])

# ---------------------------------------------------------------- report, predict, inspect


def case_report_without_report_group(tmp):
    expect_failure(tmp, ["report", FIX.model, "--csv", os.path.join(tmp, "r.csv")],
                   ["model.h5", "/report"], watch=[FIX.dir])


def case_report_csv_over_its_result(tmp):
    result = copy(FIX.result, tmp)
    before = open(result, "rb").read()
    expect_failure(tmp, ["report", result, "--csv", result, "-q"],
                   ["result.h5", "is the input file"])
    assert open(result, "rb").read() == before, "the result was overwritten"


def case_report_json_unwritable(tmp):
    expect_failure(tmp, ["report", FIX.result, "--json", "/proc/self/report.json", "-q"],
                   ["/proc/self/report.json"], watch=[FIX.dir])


def case_report_html_is_a_file(tmp):
    page = write_file(os.path.join(tmp, "page"), "a file\n")
    expect_failure(tmp, ["report", FIX.result, "--html", page, "--json",
                         os.path.join(tmp, "r.json"), "-q"],
                   ["page/index.html", "not a directory"])


def case_report_json_is_not_a_report(tmp):
    path = write_report_json(os.path.join(tmp, "fake.h5"), "{}")
    expect_failure(tmp, ["report", path, "--csv", os.path.join(tmp, "r.csv")],
                   ["fake.h5:/report/json", "not a kseg report", "schemes"])


def case_report_json_syntax_error(tmp):
    path = write_report_json(os.path.join(tmp, "fake.h5"), '{"schemes": [1, 2')
    expect_failure(tmp, ["report", path], ["fake.h5:/report/json", "not a JSON report"])


def case_report_renderer_refusal_is_one_line(tmp):
    # Structurally a report, but the renderer misses its keys: its one line becomes kseg's,
    # and neither the --json nor the --csv file is written.
    path = write_report_json(os.path.join(tmp, "thin.h5"),
                             '{"features": [], "schemes": [{"segments": []}]}')
    expect_failure(tmp, ["report", path, "--html", os.path.join(tmp, "html"), "--json",
                         os.path.join(tmp, "r.json"), "--csv", os.path.join(tmp, "r.csv"), "-q"],
                   ["HTML renderer", "failed: "])


def case_report_features_not_names(tmp):
    # Feature names head the table and the CSV columns: a number there is refused up front.
    path = write_report_json(os.path.join(tmp, "numbers.h5"),
                             '{"features": [1], "schemes": [{"segments": []}]}')
    expect_failure(tmp, ["report", path, "--csv", os.path.join(tmp, "r.csv")],
                   ["numbers.h5:/report/json", "not a kseg report", "features"])


def case_report_html_keeps_a_json_named_like_its_scratch_copy(tmp):
    # The renderer's JSON copy gets a unique hidden name: a --json output (or any file) named
    # DIR.report.json is written and kept, not overwritten and deleted.
    result = os.path.join(tmp, "result.h5")
    write_report_json(result, open(os.path.join(os.path.dirname(__file__),
                                                "report_sample.json")).read())
    html = os.path.join(tmp, "site")
    json_out = html + ".report.json"
    run = run_kseg("report", result, "--html", html, "--json", json_out, "-q", check=False)
    assert run.returncode == 0, run.stderr
    assert os.path.exists(json_out), "the --json output was deleted"
    assert json.load(open(json_out))["schemes"], "the --json output is not the report"
    hidden = [name for name in os.listdir(tmp) if ".tmp." in name]
    assert not hidden, f"left behind: {hidden}"


def case_report_missing_file(tmp):
    expect_failure(tmp, ["report", os.path.join(tmp, "none.h5")], ["none.h5"])


def case_predict_model_of_other_dimension(tmp):
    path = write_h5(os.path.join(tmp, "in.h5"), x=good_features(d=4))
    model = os.path.join(tmp, "model.h5")
    run_kseg("cluster", write_h5(os.path.join(tmp, "train.h5"), x=good_features(d=3)), "-k", 2,
             "-o", model, "-q")
    expect_failure(tmp, ["predict", "--model", model, f"{path}:/x", "-o",
                         os.path.join(tmp, "out.h5")], ["in.h5", "4", "3"])


def case_predict_model_is_not_a_model(tmp):
    expect_failure(tmp, ["predict", "--model", FIX.tx, FIX.customers, "-o",
                         os.path.join(tmp, "out.h5")], ["tx.h5", "/model"])


def case_predict_output_is_model(tmp):
    model = copy(FIX.model, tmp)
    before = open(model, "rb").read()
    expect_failure(tmp, ["predict", "--model", model, FIX.customers, "-o", model], ["model"])
    assert open(model, "rb").read() == before


def case_inspect_missing_dataset(tmp):
    expect_failure(tmp, ["inspect", f"{FIX.customers}:/customers/nothing"],
                   ["customers.h5", "/customers/nothing"])


def case_inspect_truncated(tmp):
    data = open(FIX.tx, "rb").read()
    cut = write_file(os.path.join(tmp, "cut.h5"), data[:len(data) // 2])
    expect_failure(tmp, ["inspect", cut], ["cut.h5", "truncated HDF5 file"])

# ---------------------------------------------------------------- generate: absurd sizes


def case_generate_transactions_negative(tmp):
    expect_failure(tmp, ["generate", "transactions", "--transactions", -5, "-o",
                         os.path.join(tmp, "out.h5")], ["--transactions", "'-5'"], code=2)


def case_generate_transactions_zero(tmp):
    expect_failure(tmp, ["generate", "transactions", "--transactions", 0, "-o",
                         os.path.join(tmp, "out.h5")], ["--transactions", "'0'"], code=2)


def case_generate_transactions_1e30(tmp):
    expect_failure(tmp, ["generate", "transactions", "--transactions", "1e30", "-o",
                         os.path.join(tmp, "out.h5")], ["--transactions", "'1e30'"], code=2)


def case_generate_transactions_more_than_the_disk_holds(tmp):
    # 2^40 rows are allowed, but 67 TB fit on no test machine: refused before writing.
    with file_size_limit(64 << 20):
        expect_failure(tmp, ["generate", "transactions", "--transactions", 2 ** 40, "-o",
                             os.path.join(tmp, "out.h5")], ["out.h5", "GB free"])


def case_generate_customers_1e30(tmp):
    expect_failure(tmp, ["generate", "customers", "--n", "1e30", "-o",
                         os.path.join(tmp, "out.h5")], ["--n", "'1e30'"], code=2)


def case_generate_blobs_zero_dimensions(tmp):
    expect_failure(tmp, ["generate", "blobs", "--n", 10, "--d", 0, "--k", 2, "-o",
                         os.path.join(tmp, "out.h5")], ["--d", "'0'"], code=2)


def case_generate_customers_more_than_the_disk_holds(tmp):
    with file_size_limit(64 << 20):
        expect_failure(tmp, ["generate", "customers", "--n", 2 ** 40, "-o",
                             os.path.join(tmp, "out.h5")], ["out.h5", "GB free"])

# ---------------------------------------------------------------- cluster


def case_cluster_output_under_a_file(tmp):
    blocker = write_file(os.path.join(tmp, "blocker"), "x\n")
    expect_failure(tmp, ["cluster", FIX.customers, "-k", 2, "-o",
                         os.path.join(blocker, "out.h5")], ["blocker", "not a directory"])


def case_cluster_output_under_proc(tmp):
    expect_failure(tmp, ["cluster", FIX.customers, "-k", 2, "-o", "/proc/self/kseg.h5"],
                   ["/proc/self", "not writable"])


def main():
    global FIX
    cases = Cases()
    with scratch_dir() as fixtures:
        FIX = Fixtures(fixtures)
        for name, function in sorted(globals().items()):
            if name.startswith("case_"):
                with scratch_dir() as tmp:
                    cases.run(name[5:], function, tmp)
    cases.finish()


if __name__ == "__main__":
    main()
