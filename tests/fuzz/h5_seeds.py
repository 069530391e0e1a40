#!/usr/bin/env python3
"""Writes the seeds of fuzz_h5_input (tests/fuzz/corpus/fuzz_h5_input/) in the byte encoding that
fuzz_h5_input.c decodes: a list of operations that build an HDF5 file, then the choices of the
readers. The encoding lives in the C file; this script only spells a few meaningful files in it
(a customer matrix, a column group, a transaction log, a model, and damaged variants)."""
import os
import sys

GROUPS = ["/", "/customers", "/transactions", "/transactions/dictionaries", "/model",
          "/model/prepare", "/rfm", "/labels"]
LEAVES = ["features", "id", "customer_id", "customer_valid", "time", "amount", "quantity",
          "price", "invoice", "cancelled", "Country", "channel", "recency", "frequency",
          "monetary", "tenure", "centroids", "center", "scale", "segment_names",
          "cluster_segment", "feature_mean", "customers", "transactions", "dictionaries", "a"]
ATTRIBUTES = ["columns", "unit", "kind", "rows", "scaling", "kernel"]
WORDS = ["category", "s", "ms", "us", "ns", "h", "standard", "robust", "none", "recency",
         "frequency", "monetary", "tenure", "a", "id", "Country", "features", "", "x/y",
         "Germany"]
TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
         "float64", "int32be", "float64be", "fixed", "string", "compound", "bool"]
NUMERIC_MODES = {"zeros": 0, "iota": 1, "raw": 2, "special": 3, "codes": 4, "times": 5}
OPS = {"dataset": 0, "attribute": 3, "group": 5, "hard": 6, "soft": 7}


def path(text):
    """The path byte: group index in the top 3 bits, leaf index (or 31: the group) below."""
    group, _, leaf = text.rpartition("/")
    group = group or "/"
    if text in GROUPS:
        return GROUPS.index(text) << 5 | 31
    return GROUPS.index(group) << 5 | LEAVES.index(leaf)


def dims(shape):
    """Rank byte and dims bytes: rank 1-3 (dims < 9 directly, else via the special table)."""
    special = [0, 1, 2, 3, 64, 100, 257, 4096]
    out = [len(shape)]
    for d in shape:
        out.append(d if d < 9 else 224 + special.index(d))
    return out


def dataset(where, type_name, shape, values, layout=0, chunk=()):
    out = [OPS["dataset"], path(where), TYPES.index(type_name), 8] + dims(shape) + [layout]
    if layout:
        out += list(chunk)
    return out + values


def numeric(mode, parameter=0, extra=()):
    return [NUMERIC_MODES[mode], parameter] + list(extra)


def strings(names):
    return [0] + [WORDS.index(n) for n in names]


def attribute(where, name, kind, shape, values, string_size=12):
    """kind: 0 variable strings, 1 fixed strings, 2 int64, 3 float64, 4 int8; shape () = scalar."""
    shape_bytes = [0] if shape == () else dims(shape)
    return [OPS["attribute"], path(where), ATTRIBUTES.index(name), kind, string_size - 1] + \
        shape_bytes + values


def seed(operations, readers):
    ops = [op for op in operations]
    out = [0, len(ops)]
    for op in ops:
        out += op
    return bytes(out + readers)


def hard_link(new, target):
    return [OPS["hard"], path(new), path(target)]


def soft_link(new, target):
    return [OPS["soft"], path(new), path(target)]


def table_column(name):
    """A column name pick of read_table: odd bytes index the words, even ones the leaves."""
    return WORDS.index(name) * 2 + 1 if name in WORDS else LEAVES.index(name) * 2


def main(directory):
    seeds = {}
    # A 2-D feature matrix with column names and ids, the default table of `kseg cluster`; read
    # as the default table, then listed (read_pieces 4 = kseg_h5_describe).
    seeds["matrix"] = seed([
        dataset("/customers/features", "float32", (8, 4), numeric("iota"), 2, (3, 2)),
        attribute("/customers/features", "columns", 0, (4,),
                  strings(["recency", "frequency", "monetary", "tenure"])),
        dataset("/customers/id", "int64", (8,), numeric("iota")),
    ], [0b0000101, 0, 0, 4, path("/customers/features")])
    # The same damaged: a NaN, two names for three columns, four ids for five rows. Read with
    # and without the finite check, then one named column of a row range.
    seeds["matrix_damaged"] = seed([
        dataset("/customers/features", "float64", (5, 3), numeric("special", 0, [0, 3, 1] * 5)),
        attribute("/customers/features", "columns", 1, (2,), strings(["recency", "a"]), 8),
        dataset("/customers/id", "uint64", (4,), numeric("special", 0, [13, 12, 0, 1])),
    ], [0b11, 0, 0b10000, 2, 0b110001, table_column("recency"), 1, 2])
    # The matrix in gzip chunks (deflate alone: layout bit 2) whose first chunk is overwritten
    # (layout bit 3) by 9 bytes that start like a zlib stream and then go wrong: the parallel
    # inflater must name the chunk. Then the same with shuffle and the chunk's 4 x 3 float32
    # (48 bytes, shuffled) stored with the deflate filter marked as skipped (mask 2, layout bits
    # 4-5), which both readers take as stored.
    damaged_stream = [8, 0x78, 0x9C, 0x63, 0x60, 0xFF, 0x00, 0x13, 0x37, 0x00]
    raw_chunk = [0] * 24 + [0x80, 0x3F, 0x40] * 8
    seeds["matrix_gzip_damaged"] = seed([
        dataset("/customers/features", "float32", (8, 4), numeric("iota"), 2 | 4 | 8, (3, 2))
        + damaged_stream,
    ], [0b0000101, 0, 0, 4, path("/customers/features")])
    seeds["matrix_gzip_skipped_filter"] = seed([
        dataset("/customers/features", "float32", (8, 4), numeric("iota"), 2 | 8 | 32, (3, 2))
        + raw_chunk,
    ], [0b0000101, 0, 0, 4, path("/customers/features")])
    # A group of 1-D columns (one of them shorter), read by name as float32, then a row range.
    seeds["columns"] = seed([
        dataset("/customers/recency", "float64", (6,), numeric("iota")),
        dataset("/customers/frequency", "int32", (6,), numeric("codes", 3)),
        dataset("/customers/monetary", "float32", (6,), numeric("times", 2)),
        dataset("/customers/tenure", "uint16", (5,), numeric("iota")),
        dataset("/customers/id", "int64", (6,), numeric("iota")),
    ], [0b11, 3, 0b0110, table_column("recency"), table_column("monetary"),
        3, 0b100000, 1, 3])
    # A transaction log as `kseg import transactions` writes it, with a category: RFM by
    # invoices, 5 bins, blocks of 6 rows, where Country=Germany; then the defaults.
    tx = [
        dataset("/transactions/customer_id", "int64", (8,), numeric("codes", 4)),
        dataset("/transactions/time", "int64", (8,), numeric("times", 5)),
        attribute("/transactions/time", "unit", 0, (), strings(["s"])),
        dataset("/transactions/amount", "float64", (8,), numeric("iota")),
        dataset("/transactions/invoice", "int64", (8,), numeric("codes", 6)),
        dataset("/transactions/cancelled", "uint8", (8,), numeric("zeros")),
        dataset("/transactions/Country", "int32", (8,), numeric("codes", 2)),
        attribute("/transactions/Country", "kind", 0, (), strings(["category"])),
        dataset("/transactions/dictionaries/Country", "string", (3,),
                strings(["Germany", "a", "Country"])),
    ]
    seeds["transactions"] = seed(tx, [0b110000, 1, 0, 3, 5, 0b11])
    # The same with dedupe, 6 bins, blocks of 8, where Country=a.
    seeds["transactions_where"] = seed(tx, [0b10000, 0, 0b1000, 4, 7, 0b101])
    # Extreme times in nanoseconds, ids from uint32, int8 quantities with negatives: RFM by days
    # with value ties, 2 bins, blocks of 1.
    seeds["transactions_extreme"] = seed([
        dataset("/transactions/customer_id", "uint32", (7,),
                numeric("special", 0, [0, 1, 2, 3, 4, 5, 6])),
        dataset("/transactions/time", "int64", (7,),
                numeric("special", 0, [12, 13, 14, 15, 16, 17, 18])),
        attribute("/transactions/time", "unit", 1, (), strings(["ns"]), 2),
        dataset("/transactions/amount", "float32", (7,), numeric("iota")),
        dataset("/transactions/quantity", "int8", (7,), numeric("codes", 0x83)),
    ], [0b110000, 0, 0b10001, 2, 9, 0, 0])
    # A customer_valid column of the wrong length.
    seeds["transactions_mismatch"] = seed([
        dataset("/transactions/customer_id", "int64", (7,), numeric("iota")),
        dataset("/transactions/time", "int64", (7,), numeric("times", 1)),
        dataset("/transactions/amount", "float64", (7,), numeric("iota")),
        dataset("/transactions/customer_valid", "uint8", (6,), numeric("codes", 1)),
    ], [0b10000, 0])
    # A model as `kseg run` writes it, read piece by piece as predict does, with a hard link
    # that makes a cycle and a dangling soft link (both listed by kseg_h5_describe).
    seeds["model"] = seed([
        dataset("/model/centroids", "float64", (3, 2), numeric("iota")),
        attribute("/model/centroids", "columns", 0, (2,), strings(["recency", "monetary"])),
        attribute("/model/centroids", "kernel", 0, (), strings(["none"])),
        dataset("/model/prepare/center", "float64", (2,), numeric("zeros")),
        attribute("/model/prepare/center", "scaling", 0, (), strings(["standard"])),
        dataset("/model/segment_names", "string", (2,), strings(["a", "Germany"])),
        dataset("/model/cluster_segment", "int32", (3,), numeric("codes", 1)),
        hard_link("/model/a", "/"),
        soft_link("/labels", "/model/feature_mean"),
    ], [0b1111100, 8, path("/model/prepare/center"), 2, 1, 1, path("/model/cluster_segment"),
        3, 18, path("/model/centroids"), ATTRIBUTES.index("kernel"), 4, 0])
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_h5_input"))
