#!/usr/bin/env python3
"""Renders a kseg segment report (the JSON written by `kseg report`) as an HTML page with charts.

    python3 cli/report_html.py REPORT.json --out DIR [--title TEXT]

writes DIR/index.html (one self-contained UTF-8 page: inline CSS and script, no network) and one
SVG file per chart beside it (DIR/chart-*.svg). Every file is written under a temporary name and
renamed into place, charts first and the page last; DIR is created if missing and no other file
in it is touched. Needs only the standard library, numpy and matplotlib (>= 3.6, Agg backend).

Exit status: 0 written; 1 bad input or unwritable output (one line on stderr naming the file and
what was wrong); 2 usage error.
"""
import argparse
import base64
import hashlib
import html
import io
import json
import math
import os
import re
import sys
import tempfile
import textwrap
import warnings

PROG = "kseg report --html"
CHART_WIDTH_IN = 10.0       # every figure is 10 inches wide: 960 CSS px, shown at most 1000 px
CSS_PX_PER_IN = 96


class ReportError(Exception):
    """Bad input or output; the message is the one line printed on stderr."""


# ------------------------------------------------------------------ reading and checking input

def _kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_CHECKS = {
    "number": (_is_number, "a number"),
    "number?": (lambda v: v is None or _is_number(v), "a number or null"),
    "int": (lambda v: _is_number(v) and float(v).is_integer(), "an integer"),
    "int?": (lambda v: v is None or (_is_number(v) and float(v).is_integer()),
             "an integer or null"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "object?": (lambda v: v is None or isinstance(v, dict), "an object or null"),
}


class Checker:
    """Reads keys out of the parsed JSON, naming the file and the path of anything wrong."""

    def __init__(self, path):
        self.path = path

    def fail(self, where, message):
        prefix = f"{self.path}: {where}: " if where else f"{self.path}: "
        raise ReportError(prefix + message)

    def get(self, obj, key, kind, where="", default=KeyError):
        if key not in obj:
            if default is not KeyError:
                return default
            self.fail(where, f"missing key '{key}'")
        return self.check(obj[key], kind, f"{where}.{key}" if where else key)

    def check(self, value, kind, where):
        test, wanted = _CHECKS[kind]
        if not test(value):
            self.fail(where, f"expected {wanted}, found {_kind(value)}")
        return value

    def strings(self, obj, key, where=""):
        items = self.get(obj, key, "list", where)
        name = f"{where}.{key}" if where else key
        return [self.check(v, "string", f"{name}[{i}]") for i, v in enumerate(items)]

    def objects(self, obj, key, where="", default=KeyError):
        items = self.get(obj, key, "list", where, default)
        name = f"{where}.{key}" if where else key
        return [(self.check(v, "object", f"{name}[{i}]"), f"{name}[{i}]")
                for i, v in enumerate(items)]

    def matrix(self, obj, key, rows, cols, where):
        value = self.get(obj, key, "list", where)
        name = f"{where}.{key}"
        if len(value) != rows:
            self.fail(name, f"expected {rows} rows (one per row name), found {len(value)}")
        out = []
        for i, row in enumerate(value):
            self.check(row, "list", f"{name}[{i}]")
            if len(row) != cols:
                self.fail(f"{name}[{i}]", f"expected {cols} values (one per column name), "
                                          f"found {len(row)}")
            out.append([self.check(v, "number?", f"{name}[{i}][{j}]") for j, v in enumerate(row)])
        return out


def load_report(path):
    """Parses and checks REPORT.json; returns a normalized dict or raises ReportError."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise ReportError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ReportError(f"{path}: not UTF-8 at byte {error.start}") from None
    if not text.strip():
        raise ReportError(f"{path}: not JSON: the file is empty")
    try:
        # NaN is not JSON; kseg writes null instead, but read a stray NaN/Infinity as null.
        data = json.loads(text, parse_constant=lambda _: None)
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not JSON at line {error.lineno} column {error.colno}: "
                          f"{error.msg}") from None
    c = Checker(path)
    if not isinstance(data, dict):
        c.fail("", f"expected a JSON object at the top level, found {_kind(data)}")

    report = {
        "kseg_version": c.get(data, "kseg_version", "string"),
        "title": c.get(data, "title", "string", default=""),
        "generated": c.get(data, "generated", "string", default=""),
        "customers": c.get(data, "customers", "number"),
        "revenue": c.get(data, "revenue", "number"),
        "value_column": c.get(data, "value_column", "string"),
        "features": c.strings(data, "features"),
        "primary_scheme": c.get(data, "primary_scheme", "string"),
    }
    schemes = []
    for scheme, where in c.objects(data, "schemes"):
        segments = []
        for seg, sw in c.objects(scheme, "segments", where):
            entry = {
                "id": c.get(seg, "id", "int?", sw, default=None),
                "name": c.get(seg, "name", "string", sw),
                "customers": c.get(seg, "customers", "number", sw),
                "customer_share": c.get(seg, "customer_share", "number", sw),
                "revenue": c.get(seg, "revenue", "number?", sw),
                "revenue_share": c.get(seg, "revenue_share", "number?", sw),
                "cumulative_customer_share": c.get(seg, "cumulative_customer_share", "number",
                                                   sw),
                "cumulative_revenue_share": c.get(seg, "cumulative_revenue_share", "number?", sw),
                "value_per_customer": c.get(seg, "value_per_customer", "number?", sw),
                "priority": c.get(seg, "priority", "int", sw),
                "mean": {},
            }
            mean = c.get(seg, "mean", "object", sw)
            for key, value in mean.items():
                entry["mean"][key] = c.check(value, "number?", f"{sw}.mean.{key}")
            segments.append(entry)
        schemes.append({"name": c.get(scheme, "name", "string", where), "segments": segments})
    if not schemes:
        c.fail("schemes", "expected at least one scheme, found an empty list")
    names = [s["name"] for s in schemes]
    if report["primary_scheme"] not in names:
        c.fail("primary_scheme", f"'{report['primary_scheme']}' is not one of the schemes "
                                 f"({', '.join(names)})")
    # The primary scheme first, the others in file order.
    schemes.sort(key=lambda s: s["name"] != report["primary_scheme"])
    report["schemes"] = schemes

    profile = c.get(data, "profile", "object?", default=None)
    if profile is not None:
        features = c.strings(profile, "features", "profile")
        rows = []
        for seg, sw in c.objects(profile, "segments", "profile"):
            values = c.get(seg, "values", "list", sw)
            if len(values) != len(features):
                c.fail(f"{sw}.values", f"expected {len(features)} values (one per feature), "
                                       f"found {len(values)}")
            rows.append({"name": c.get(seg, "name", "string", sw),
                         "values": [c.check(v, "number?", f"{sw}.values[{i}]")
                                    for i, v in enumerate(values)]})
        profile = {"scheme": c.get(profile, "scheme", "string", "profile"),
                   "space": c.get(profile, "space", "string", "profile", default=""),
                   "features": features, "segments": rows}
    report["profile"] = profile

    merges = []
    for merge, where in c.objects(data, "merges", default=[]):
        merges.append({
            "scheme": c.get(merge, "scheme", "string", where),
            "from": c.get(merge, "from", "string", where),
            "into": c.get(merge, "into", "string", where),
            "customer_share": c.get(merge, "customer_share", "number?", where),
            "revenue_share": c.get(merge, "revenue_share", "number?", where),
            "reason": c.get(merge, "reason", "string", where, default=""),
        })
    report["merges"] = merges

    sweep = c.get(data, "k_sweep", "object?", default=None)
    if sweep is not None:
        entries = []
        for entry, where in c.objects(sweep, "entries", "k_sweep"):
            entries.append({
                "k": c.get(entry, "k", "int", where),
                "inertia": c.get(entry, "inertia", "number?", where, default=None),
                "silhouette": c.get(entry, "silhouette", "number?", where, default=None),
                "calinski_harabasz": c.get(entry, "calinski_harabasz", "number?", where,
                                           default=None),
                "davies_bouldin": c.get(entry, "davies_bouldin", "number?", where, default=None),
            })
        entries.sort(key=lambda e: e["k"])
        sweep = {"rule": c.get(sweep, "rule", "string", "k_sweep", default=""),
                 "chosen": c.get(sweep, "chosen", "int?", "k_sweep", default=None),
                 "clear": c.get(sweep, "clear", "bool", "k_sweep", default=True),
                 "note": c.get(sweep, "note", "string", "k_sweep", default=""),
                 "entries": entries}
    report["k_sweep"] = sweep

    crosstabs = []
    for tab, where in c.objects(data, "crosstabs", default=[]):
        row_names = c.strings(tab, "row_names", where)
        col_names = c.strings(tab, "column_names", where)
        counts = c.matrix(tab, "counts", len(row_names), len(col_names), where)
        revenue = (c.matrix(tab, "revenue", len(row_names), len(col_names), where)
                   if tab.get("revenue") is not None else None)
        crosstabs.append({"rows": c.get(tab, "rows", "string", where),
                          "columns": c.get(tab, "columns", "string", where),
                          "row_names": row_names, "column_names": col_names,
                          "counts": counts, "revenue": revenue})
    report["crosstabs"] = crosstabs
    return report


# ------------------------------------------------------------------ formatting

def esc(text):
    return html.escape(str(text), quote=True)


def fmt_count(value):
    return "–" if value is None else f"{value:,.0f}"


def fmt_money(value):
    return "–" if value is None else f"{value:,.2f}"


def fmt_share(value):
    return "–" if value is None else f"{100 * value:.1f}%"


def fmt_num(value):
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_profile(value):
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"


def fmt_metric(value):
    if value is None:
        return "–"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4f}"


def slug(text, taken):
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def mpl_text(text):
    """Text for matplotlib: a '$' would start mathtext, so it is escaped."""
    return str(text).replace("$", r"\$")


def wrap(text, width):
    return "\n".join(textwrap.wrap(mpl_text(text), width, break_long_words=True,
                                   break_on_hyphens=False)) or " "


def pareto_points(segments):
    """(customer share, revenue share) from the origin through each segment in priority order."""
    xs, ys = [0.0], [0.0]
    for seg in segments:
        if seg["cumulative_revenue_share"] is None:
            return None
        xs.append(seg["cumulative_customer_share"])
        ys.append(seg["cumulative_revenue_share"])
    return xs, ys


def customers_for_revenue(xs, ys, target):
    """The customer share at which the cumulative revenue share reaches target (interpolated)."""
    for i in range(1, len(xs)):
        if ys[i] >= target:
            span = ys[i] - ys[i - 1]
            t = (target - ys[i - 1]) / span if span > 0 else 1.0
            return xs[i - 1] + t * (xs[i] - xs[i - 1])
    return None


# ------------------------------------------------------------------ charts

class Charts:
    """Draws the figures with matplotlib (Agg, no pyplot state) and returns SVG bytes."""

    def __init__(self):
        try:
            import matplotlib
            import numpy as np
        except ImportError as error:
            raise ReportError(f"the charts need numpy and matplotlib ({error}): install "
                              f"python3-matplotlib or run scripts/setup.sh") from None
        matplotlib.use("Agg")
        from matplotlib import rcParams
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator, PercentFormatter
        self.np = np
        self.Figure = Figure
        self.Percent = PercentFormatter
        self.MaxN = MaxNLocator
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        rcParams.update({
            "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
            "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 10,
            "figure.titlesize": 13, "figure.dpi": 100, "savefig.dpi": 100,
            "svg.fonttype": "path", "svg.hashsalt": "kseg-report",
            "axes.spines.top": False, "axes.spines.right": False,
            "axes.grid": True, "grid.alpha": 0.3, "axes.axisbelow": True,
        })
        from matplotlib import colormaps
        self.colors = list(colormaps["tab10"].colors)

    def figure(self, height):
        return self.Figure(figsize=(CHART_WIDTH_IN, height), layout="constrained")

    @staticmethod
    def title(fig, text, **style):
        """The chart's title at the figure's left edge, wrapped to the figure's width."""
        fig.suptitle(wrap(text, 100), x=0.01, ha="left", fontsize=12, **style)

    @staticmethod
    def svg(fig):
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        return buffer.getvalue()

    def sizes(self, scheme, primary):
        segs = scheme["segments"]
        n = len(segs)
        fig = self.figure(max(3.0, 0.62 * n + 1.6))
        ax = fig.add_subplot()
        y = self.np.arange(n)
        cust = [s["customer_share"] for s in segs]
        rev = [s["revenue_share"] or 0.0 for s in segs]
        h = 0.38
        bars_c = ax.barh(y - h / 2, cust, h, color=self.colors[0], label="share of customers")
        bars_r = ax.barh(y + h / 2, rev, h, color=self.colors[1], label="share of revenue")
        labels = [s["revenue_share"] for s in segs]
        for bars, values in ((bars_c, cust), (bars_r, labels)):
            for bar, value in zip(bars, values):
                ax.annotate(fmt_share(value), (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                            xytext=(3, 0), textcoords="offset points", va="center", fontsize=10)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{s['priority']}. " + wrap(s["name"], 36) for s in segs])
        ax.invert_yaxis()
        top = max(cust + rev + [0.01])
        ax.set_xlim(0, min(1.0, top) * 1.14 + 0.01)
        ax.xaxis.set_major_formatter(self.Percent(1.0, decimals=0))
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("share of all customers / of all revenue")
        kind = "primary scheme" if primary else "scheme"
        self.title(fig, f"{scheme['name']} ({kind}): segment sizes and revenue shares, "
                        f"in priority order")
        ax.legend(loc="best", frameon=True, framealpha=0.9)
        return self.svg(fig)

    def pareto(self, schemes):
        fig = self.figure(6.2)
        grid = fig.add_gridspec(1, 2, width_ratios=[1.5, 1])
        ax = fig.add_subplot(grid[0, 0])
        key = fig.add_subplot(grid[0, 1])
        ax.plot([0, 1], [0, 1], color="0.55", linestyle=":", linewidth=1.5,
                label="equal shares (no concentration)")
        ax.axhline(0.8, color="0.35", linestyle="--", linewidth=1, label="80% of revenue")
        primary = schemes[0]
        for i, scheme in enumerate(schemes):
            points = pareto_points(scheme["segments"])
            if points is None or len(points[0]) < 2:
                continue
            xs, ys = points
            if i == 0:
                ax.plot(xs, ys, color=self.colors[0], marker="o", linewidth=2.2, markersize=6,
                        label=mpl_text(scheme["name"]) + " (primary)", zorder=3)
                for seg, x, yv in zip(scheme["segments"], xs[1:], ys[1:]):
                    ax.annotate(str(seg["priority"]), (x, yv), xytext=(6, -13),
                                textcoords="offset points", fontsize=10, fontweight="bold",
                                color=self.colors[0])
                x80 = customers_for_revenue(xs, ys, 0.8)
                if x80 is not None:
                    ax.plot([x80, x80], [0, 0.8], color="0.35", linestyle="--", linewidth=1)
                    ax.text(0.99, 0.775, f"{fmt_share(x80)} of customers\nbring 80% of revenue",
                            ha="right", va="top", fontsize=10)
            else:
                ax.plot(xs, ys, color=self.colors[i % 10], marker=".", linewidth=1.3,
                        linestyle="-.", alpha=0.9, label=mpl_text(scheme["name"]))
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_aspect("equal")
        ax.xaxis.set_major_formatter(self.Percent(1.0, decimals=0))
        ax.yaxis.set_major_formatter(self.Percent(1.0, decimals=0))
        ax.set_xlabel("cumulative share of customers (segments in priority order)")
        ax.set_ylabel("cumulative share of revenue")
        self.title(fig, f"Pareto curve of {primary['name']}: revenue concentration")
        ax.legend(loc="lower right", framealpha=0.9)
        key.axis("off")
        lines = [f"Points of {mpl_text(primary['name'])}, by priority:"]
        for seg in primary["segments"]:
            label = wrap(seg["name"], 34).replace("\n", "\n      ")
            lines.append(f"{seg['priority']:>2}. {label}")
        key.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=10,
                 transform=key.transAxes, linespacing=1.5)
        return self.svg(fig)

    def profile(self, profile):
        features = profile["features"]
        rows = profile["segments"]
        long_names = max((len(r["name"]) for r in rows), default=0) > 40
        ncol = 1 if long_names else 2
        legend_rows = math.ceil(len(rows) / ncol)
        fig = self.figure(4.6 + 0.28 * legend_rows)
        ax = fig.add_subplot()
        x = self.np.arange(len(features))
        markers = "osD^vPX*<>"
        styles = ["-", "--", "-.", ":"]
        for i, row in enumerate(rows):
            values = [self.np.nan if v is None else v for v in row["values"]]
            ax.plot(x, values, color=self.colors[i % 10], marker=markers[i % len(markers)],
                    linestyle=styles[(i // 10) % len(styles)], linewidth=2, markersize=7,
                    label=wrap(row["name"], 60))
        ax.axhline(0, color="0.4", linewidth=1)
        ax.set_xticks(x)
        ax.set_xticklabels([wrap(f, 18) for f in features])
        ax.set_xlim(-0.3, len(features) - 0.7)
        space = profile["space"] or "feature"
        ax.set_ylabel(f"centroid ({mpl_text(space)} value)")
        self.title(fig, f"Segment profiles of {profile['scheme']}: centroids over the "
                        f"{space} features")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=ncol, frameon=False)
        return self.svg(fig)

    def ksweep(self, sweep):
        entries = sweep["entries"]
        chosen = sweep["chosen"]
        fig = self.figure(7.0)
        grid = fig.add_gridspec(2, 3, height_ratios=[1.5, 1])
        panels = [(fig.add_subplot(grid[0, :]), "inertia", "inertia (lower is tighter)"),
                  (fig.add_subplot(grid[1, 0]), "silhouette", "silhouette (higher is better)"),
                  (fig.add_subplot(grid[1, 1]), "calinski_harabasz",
                   "Calinski–Harabasz (higher is better)"),
                  (fig.add_subplot(grid[1, 2]), "davies_bouldin",
                   "Davies–Bouldin (lower is better)")]
        span = [e["k"] for e in entries] + ([chosen] if chosen is not None else [])
        for i, (ax, key, title) in enumerate(panels):
            ax.set_xlim(min(span) - 0.4, max(span) + 0.4)
            points = [(e["k"], e[key]) for e in entries if e[key] is not None]
            ax.set_title(title, loc="left", fontsize=12 if i == 0 else 11)
            ax.xaxis.set_major_locator(self.MaxN(integer=True))
            ax.set_xlabel("k (number of clusters)" if i == 0 else "k")
            if not points:
                ax.text(0.5, 0.5, "not computed", ha="center", va="center",
                        transform=ax.transAxes, fontsize=11, color="0.3")
                ax.set_xticks([e["k"] for e in entries] or [])
                ax.set_yticks([])
                continue
            ks, values = zip(*points)
            ax.plot(ks, values, color=self.colors[0], marker="o", linewidth=2 if i == 0 else 1.6,
                    markersize=6 if i == 0 else 5)
            if chosen is not None:
                ax.axvline(chosen, color=self.colors[3], linestyle="--", linewidth=1.3)
                at = dict(points).get(chosen)
                if at is not None:
                    ax.plot([chosen], [at], marker="o", markersize=11 if i == 0 else 8,
                            markerfacecolor="none", markeredgecolor=self.colors[3],
                            markeredgewidth=2.2)
                if i == 0:
                    # Inertia falls with k: the empty corner is the bottom left of a chosen k
                    # in the left half, the top right of one in the right half.
                    rule = f" by {mpl_text(sweep['rule'])}" if sweep["rule"] else ""
                    low, high = min(span), max(span)
                    where = (chosen - low) / (high - low) if high > low else 0.5
                    right = where > 0.7
                    top = where > 0.5
                    ax.annotate(f"chosen k = {chosen}{rule}", (chosen, 1.0 if top else 0.0),
                                xycoords=("data", "axes fraction"),
                                xytext=(-6 if right else 6, -6 if top else 6),
                                textcoords="offset points", ha="right" if right else "left",
                                va="top" if top else "bottom", color=self.colors[3],
                                fontsize=11, fontweight="bold")
            if i == 0:
                ax.yaxis.set_major_formatter(_compact_formatter())
        if sweep["clear"]:
            self.title(fig, "k sweep: inertia and cluster-quality metrics for each k")
        else:
            self.title(fig, note_text(sweep), color=self.colors[3], fontweight="bold")
        return self.svg(fig)

    def crosstab(self, tab):
        np = self.np
        counts = np.array([[0 if v is None else v for v in row] for row in tab["counts"]],
                          dtype=float)
        nrows, ncols = counts.shape
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        numbered, cell_text = crosstab_layout(tab)
        if numbered:
            col_labels = [str(j + 1) for j in range(ncols)]
            label_height = 0.3
        else:
            col_labels = [mpl_text(name) for name in tab["column_names"]]
            longest = max(len(name) for name in tab["column_names"])
            label_height = 0.2 + longest * 0.085 * 0.65     # 40 degrees, ~0.085 in per letter
        fig = self.figure(max(3.2, 0.5 * nrows + 1.6 + label_height))
        ax = fig.add_subplot()
        image = ax.imshow(share, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.grid(False)
        if cell_text is not None:
            for i in range(nrows):
                for j in range(ncols):
                    ax.text(j, i, cell_text(counts[i, j]), ha="center", va="center",
                            fontsize=10, color="white" if share[i, j] < 0.55 else "black")
        ax.set_xticks(np.arange(ncols))
        if numbered:
            ax.set_xticklabels(col_labels)
        else:
            ax.set_xticklabels(col_labels, rotation=40, ha="right", rotation_mode="anchor")
        ax.set_yticks(np.arange(nrows))
        ax.set_yticklabels([wrap(name, 34) for name in tab["row_names"]])
        ax.tick_params(length=0)
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(False)
        ax.set_xlabel(mpl_text(tab["columns"]) + (" (numbered as in the caption)"
                                                  if numbered else ""))
        ax.set_ylabel(mpl_text(tab["rows"]))
        self.title(fig, f"{tab['rows']} × {tab['columns']}: customers per pair of segments"
                        + (" (colour: share of the row)" if cell_text is not None else
                           " (colour: share of the row; counts in the table)"))
        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.ax.yaxis.set_major_formatter(self.Percent(1.0, decimals=0))
        bar.set_label(wrap(f"share of the {tab['rows']} segment's customers", 40))
        return self.svg(fig)


def crosstab_layout(tab):
    """How a crosstab heatmap is labeled: (columns numbered instead of named, the function that
    writes a count in a cell or None where the cells are too narrow for any count at 10 pt)."""
    ncols = len(tab["column_names"])
    numbered = ncols > 20 or max((len(n) for n in tab["column_names"]), default=0) > 28
    row_label_pt = min(34, max((len(n) for n in tab["row_names"]), default=0)) * 6.2 + 40
    cell_pt = (CHART_WIDTH_IN * 72 - row_label_pt - 100) / max(ncols, 1)
    values = [v or 0 for row in tab["counts"] for v in row]

    def fits(write):
        return max((len(write(v)) for v in values), default=1) * 6.4 + 6 <= cell_pt

    for write in (lambda v: f"{v:,.0f}", _compact):
        if fits(write):
            return numbered, write
    return numbered, None


def _compact(value):
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.0f}"


def _compact_formatter():
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _: _compact(v) if abs(v) >= 1e4 else f"{v:g}")


def note_text(sweep):
    """The k sweep's headline: its note, led by 'no clear knee' where the knee was not clear."""
    note = sweep["note"].strip()
    if sweep["clear"]:
        return note or (f"chosen k = {sweep['chosen']}" if sweep["chosen"] is not None else
                        "k sweep")
    if "no clear knee" in note.lower():
        return note
    return "no clear knee" + (f" — {note}" if note else "")


# ------------------------------------------------------------------ page

CSS = """
:root { color-scheme: light; }
*, *::before, *::after { box-sizing: border-box; }
body { font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1a1a1a; background: #fff; margin: 0 auto; padding: 16px 20px 48px;
       max-width: 1040px; }
h1 { font-size: 1.75rem; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.35rem; margin: 1.8em 0 0.4em; border-bottom: 2px solid #ddd;
     padding-bottom: 4px; }
h3 { font-size: 1.1rem; margin: 1.4em 0 0.4em; }
p.summary { font-size: 1.05rem; color: #333; margin: 0 0 0.4em; }
p.generated { color: #555; margin: 0 0 1em; }
nav { font-size: 0.95rem; margin: 0.6em 0 0; }
nav a { margin-right: 1em; }
figure.chart { margin: 0.6em 0 0.4em; }
figure.chart img { display: block; width: 100%; max-width: 1000px; height: auto; }
figcaption { color: #444; font-size: 0.95rem; margin-top: 0.3em; }
.notice { border-left: 6px solid #d62728; background: #fdecea; padding: 10px 14px;
          font-size: 1.15rem; font-weight: 600; margin: 0.6em 0; }
.note { border-left: 6px solid #1f77b4; background: #eef5fb; padding: 8px 14px; margin: 0.6em 0; }
.empty { color: #555; font-style: italic; font-size: 1.05rem; }
.table-wrap { overflow-x: auto; margin: 0.6em 0 1em; }
table.data { border-collapse: collapse; font-size: 0.85rem; font-variant-numeric: tabular-nums; }
table.data th, table.data td { border-bottom: 1px solid #e3e3e3; padding: 3px 6px;
                               text-align: right; white-space: nowrap; }
table.data th { background: #f4f4f4; vertical-align: bottom; white-space: normal;
                min-width: 4.5em; }
table.data .name { text-align: left; white-space: normal; min-width: 9em; }
table.data tr.chosen td { background: #fff3cd; font-weight: 600; }
table.data tfoot td { font-weight: 600; border-top: 2px solid #ccc; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var figures = document.querySelectorAll("figure.chart");
  var loaded = 0;
  figures.forEach(function (figure) {
    var ok = false, img = figure.querySelector("img"), svg = figure.querySelector("svg");
    if (img) {
      ok = img.complete && img.naturalWidth > 0;
    } else if (svg) {
      var r = svg.getBoundingClientRect();
      ok = r.width > 0 && r.height > 0;
    }
    if (ok) loaded += 1;
    var box = figure.getBoundingClientRect();
    figure.dataset.box = [box.left + window.scrollX, box.top + window.scrollY,
                          box.width, box.height].map(Math.round).join(",");
  });
  document.body.dataset.chartsLoaded = String(loaded);
  document.body.dataset.chartsExpected = String(figures.length);
});
"""


# No network and nothing but this page's own script: images from beside the page only.
CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
       "script-src 'sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
       + "'; base-uri 'none'; form-action 'none'")


def table(table_id, head, rows, foot=None, row_classes=None, name_cols=(1,)):
    """An HTML table; head and cells are already escaped HTML; name_cols are left-aligned."""
    out = [f'<div class="table-wrap"><table class="data" id="{esc(table_id)}"><thead><tr>']
    out += ['<th class="name">' + h + "</th>" if i in name_cols else "<th>" + h + "</th>"
            for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(rows):
        cls = row_classes[r] if row_classes else ""
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        out += [f'<td class="name">{v}</td>' if i in name_cols else f"<td>{v}</td>"
                for i, v in enumerate(row)]
        out.append("</tr>")
    out.append("</tbody>")
    if foot:
        out.append("<tfoot><tr>")
        out += [f'<td class="name">{v}</td>' if i in name_cols else f"<td>{v}</td>"
                for i, v in enumerate(foot)]
        out.append("</tr></tfoot>")
    out.append("</table></div>")
    return "".join(out)


def figure_html(chart_id, file_name, height_in, alt, caption):
    width = round(CHART_WIDTH_IN * CSS_PX_PER_IN)
    height = round(height_in * CSS_PX_PER_IN)
    return (f'<figure class="chart" id="{esc(chart_id)}"><img src="{esc(file_name)}" '
            f'alt="{esc(alt)}" width="{width}" height="{height}">'
            f"<figcaption>{caption}</figcaption></figure>")


def build(report, title):
    """Draws every chart and assembles the page: returns (html text, [(file name, bytes)])."""
    charts = Charts()
    files = []
    body = []
    ids = set()

    def chart(kind, name, draw, alt, caption):
        chart_id = "chart-" + slug(f"{kind}-{name}" if name else kind, ids)
        data = draw()
        height = _svg_height_in(data)
        file_name = chart_id + ".svg"
        files.append((file_name, data))
        return figure_html(chart_id, file_name, height, alt, caption)

    schemes = report["schemes"]
    primary = schemes[0]
    features = report["features"]
    value_column = report["value_column"]

    # -- header
    body.append(f"<header><h1>{esc(title)}</h1>")
    summary = [f"<strong>{fmt_count(report['customers'])}</strong> customers",
               f"revenue <strong>{fmt_money(report['revenue'])}</strong> "
               f"(value column <code>{esc(value_column)}</code>)",
               f"{len(schemes)} scheme{'s' if len(schemes) != 1 else ''}, primary "
               f"<strong>{esc(primary['name'])}</strong>",
               f"kseg {esc(report['kseg_version'])}"]
    body.append(f'<p class="summary">{" · ".join(summary)}</p>')
    if report["generated"]:
        body.append(f'<p class="generated">generated: {esc(report["generated"])}</p>')
    body.append('<nav><a href="#segments">segments</a><a href="#pareto">Pareto curve</a>'
                '<a href="#profile">profiles</a><a href="#ksweep">k sweep</a>'
                '<a href="#crosstabs">cross-tabulations</a><a href="#merges">merges</a></nav>'
                "</header>")

    # -- (1) segments: one bar chart and one evaluation table per scheme
    body.append('<section id="segments"><h2>1. Segments: size, revenue and priority</h2>')
    taken = set()
    for index, scheme in enumerate(schemes):
        segs = scheme["segments"]
        sid = slug(scheme["name"], taken)
        is_primary = index == 0
        body.append(f'<h3>{esc(scheme["name"])}'
                    f'{" (primary scheme)" if is_primary else ""} — {len(segs)} segment'
                    f'{"s" if len(segs) != 1 else ""}</h3>')
        if segs:
            top = segs[0]
            caption = (f"Bars: share of customers (blue) and share of revenue (orange) per "
                       f"segment, highest priority first. The first segment, "
                       f"<strong>{esc(top['name'])}</strong>, holds "
                       f"{fmt_share(top['customer_share'])} of customers and "
                       f"{fmt_share(top['revenue_share'])} of revenue.")
            body.append(chart("sizes", scheme["name"], lambda s=scheme, p=is_primary:
                              charts.sizes(s, p),
                              f"Horizontal bars of customer share and revenue share for the "
                              f"{len(segs)} segments of {scheme['name']}", caption))
        else:
            body.append('<p class="empty">no segments in this scheme</p>')
        head = (["priority", "segment", "customers", "share of customers", "revenue",
                 "share of revenue", "cumulative customer share", "cumulative revenue share",
                 "value per customer"] + [f"mean {esc(f)}" for f in features])
        rows = []
        for seg in segs:
            rows.append([str(seg["priority"]), esc(seg["name"]), fmt_count(seg["customers"]),
                         fmt_share(seg["customer_share"]), fmt_money(seg["revenue"]),
                         fmt_share(seg["revenue_share"]),
                         fmt_share(seg["cumulative_customer_share"]),
                         fmt_share(seg["cumulative_revenue_share"]),
                         fmt_money(seg["value_per_customer"])]
                        + [fmt_num(seg["mean"].get(f)) for f in features])
        foot = (["", "all customers", fmt_count(report["customers"]), fmt_share(1.0),
                 fmt_money(report["revenue"]), fmt_share(1.0), "", "",
                 fmt_money(report["revenue"] / report["customers"]
                           if report["customers"] else None)] + ["" for _ in features])
        body.append(table(f"table-segments-{sid}", head, rows, foot))
    body.append("</section>")

    # -- (2) Pareto curve of the primary scheme
    body.append('<section id="pareto"><h2>2. Pareto curve: where the revenue comes from</h2>')
    points = pareto_points(primary["segments"])
    if points is not None and len(points[0]) > 1:
        xs, ys = points
        x80 = customers_for_revenue(xs, ys, 0.8)
        finding = (f"Following the priority order of <strong>{esc(primary['name'])}</strong>, "
                   + (f"{fmt_share(x80)} of customers bring 80% of revenue."
                      if x80 is not None else "the segments never reach 80% of revenue."))
        caption = (f"Cumulative share of revenue against cumulative share of customers, "
                   f"segments added in priority order (numbers at the points are priorities; "
                   f"the other schemes in thinner lines). {finding}")
        body.append(chart("pareto", "", lambda: charts.pareto(schemes),
                          "Pareto curve: cumulative revenue share against cumulative customer "
                          "share, with the diagonal and an 80% revenue guide", caption))
    else:
        body.append('<p class="empty">no revenue shares in this run: no Pareto curve</p>')
    rows = [[str(seg["priority"]), esc(seg["name"]), fmt_share(seg["customer_share"]),
             fmt_share(seg["cumulative_customer_share"]), fmt_share(seg["revenue_share"]),
             fmt_share(seg["cumulative_revenue_share"])] for seg in primary["segments"]]
    body.append(table("table-pareto", ["priority", "segment", "share of customers",
                                       "cumulative customer share", "share of revenue",
                                       "cumulative revenue share"], rows))
    body.append("</section>")

    # -- (3) profile of segment centroids
    body.append('<section id="profile"><h2>3. Segment profiles</h2>')
    profile = report["profile"]
    if profile is not None and profile["segments"] and profile["features"]:
        space = profile["space"] or "feature"
        caption = (f"One line per segment of <strong>{esc(profile['scheme'])}</strong>: its "
                   f"centroid in the {esc(space)} feature space"
                   + (" (0 is the average customer)." if space == "scaled" else "."))
        body.append(chart("profile", "", lambda: charts.profile(profile),
                          f"Line chart of the segment centroids of {profile['scheme']} over the "
                          f"features {', '.join(profile['features'])}", caption))
        rows = [[esc(r["name"])] + [fmt_profile(v) for v in r["values"]]
                for r in profile["segments"]]
        body.append(table("table-profile", ["segment"] + [esc(f) for f in profile["features"]],
                          rows, name_cols=(0,)))
    else:
        body.append('<p class="empty">no segment profile in this run</p>')
    body.append("</section>")

    # -- (4) k sweep
    body.append('<section id="ksweep"><h2>4. Choice of k</h2>')
    sweep = report["k_sweep"]
    if sweep is None:
        body.append('<p class="empty">no k sweep in this run</p>')
    else:
        headline = note_text(sweep)
        if not sweep["clear"]:
            body.append(f'<p class="notice">{esc(headline)}</p>')
        elif headline:
            body.append(f'<p class="note">{esc(headline)}</p>')
        if sweep["entries"]:
            rule = f" by the rule <em>{esc(sweep['rule'])}</em>" if sweep["rule"] else ""
            chosen = (f"The chosen k = {sweep['chosen']}{rule} is marked in red."
                      if sweep["chosen"] is not None else "No k was chosen.")
            body.append(chart("ksweep", "", lambda: charts.ksweep(sweep),
                              "k sweep: inertia against k with the chosen k marked, and "
                              "silhouette, Calinski-Harabasz and Davies-Bouldin panels",
                              f"Inertia (within-cluster sum of squares) for each k tried, and "
                              f"three cluster-quality metrics. {chosen}"))
        rows, classes = [], []
        for e in sweep["entries"]:
            rows.append([str(e["k"]), fmt_metric(e["inertia"]), fmt_metric(e["silhouette"]),
                         fmt_metric(e["calinski_harabasz"]), fmt_metric(e["davies_bouldin"])])
            classes.append("chosen" if e["k"] == sweep["chosen"] else "")
        body.append(table("table-ksweep", ["k", "inertia", "silhouette", "Calinski–Harabasz",
                                           "Davies–Bouldin"], rows, row_classes=classes,
                          name_cols=()))
    body.append("</section>")

    # -- (5) cross-tabulations
    body.append('<section id="crosstabs"><h2>5. Cross-tabulations of schemes</h2>')
    if not report["crosstabs"]:
        body.append('<p class="empty">no cross-tabulations in this run</p>')
    for number, tab in enumerate(report["crosstabs"], 1):
        body.append(f"<h3>{esc(tab['rows'])} × {esc(tab['columns'])}</h3>")
        if tab["row_names"] and tab["column_names"]:
            body.append(chart("crosstab", f"{number}-{tab['rows']}-{tab['columns']}",
                              lambda t=tab: charts.crosstab(t),
                              f"Heatmap of customers per pair of segments, {tab['rows']} "
                              f"(rows) by {tab['columns']} (columns)",
                              crosstab_caption(tab)))
        head = [f"{esc(tab['rows'])} \\ {esc(tab['columns'])}"] + \
            [esc(n) for n in tab["column_names"]] + ["total"]
        rows = []
        for name, counts in zip(tab["row_names"], tab["counts"]):
            total = sum(v for v in counts if v is not None)
            rows.append([esc(name)] + [fmt_count(v) for v in counts] + [fmt_count(total)])
        col_totals = [sum(row[j] or 0 for row in tab["counts"])
                      for j in range(len(tab["column_names"]))]
        foot = ["total"] + [fmt_count(v) for v in col_totals] + [fmt_count(sum(col_totals))]
        body.append(table(f"table-crosstab-{number}", head, rows, foot, name_cols=(0,)))
    body.append("</section>")

    # -- merges
    body.append('<section id="merges"><h2>6. Merged segments</h2>')
    if report["merges"]:
        body.append("<p>Segments too small to be worth marketing to were merged into "
                    "another segment before the evaluation above.</p>")
        rows = [[esc(m["scheme"]), esc(m["from"]), esc(m["into"]), fmt_share(m["customer_share"]),
                 fmt_share(m["revenue_share"]), esc(m["reason"])] for m in report["merges"]]
        body.append(table("table-merges", ["scheme", "merged segment", "merged into",
                                           "share of customers", "share of revenue", "reason"],
                          rows, name_cols=(0, 1, 2, 5)))
    else:
        body.append('<p class="empty">no segments were merged in this run</p>')
    body.append("</section>")

    expected = len(files)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
        f"<meta name=\"generator\" content=\"kseg {esc(report['kseg_version'])}\">\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body data-charts-expected=\"{expected}\" data-charts-loaded=\"0\">\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
    return page, files


def crosstab_caption(tab):
    numbered, cell_text = crosstab_layout(tab)
    text = (f"Customers in each pair of segments of {esc(tab['rows'])} (rows) and "
            f"{esc(tab['columns'])} (columns); the colour is the share of the row"
            + ("." if cell_text is not None else ", the counts are in the table below."))
    if numbered:
        text += " Columns: " + "; ".join(f"{j} = {esc(name)}" for j, name in
                                         enumerate(tab["column_names"], 1)) + "."
    return text


def _svg_height_in(data):
    """The figure height in inches, from the width/height attributes matplotlib writes (pt)."""
    match = re.search(rb'<svg[^>]*?height="([0-9.]+)pt"', data)
    return float(match.group(1)) / 72 if match else CHART_WIDTH_IN * 0.6


# ------------------------------------------------------------------ output

def write_atomic(directory, name, data, mode):
    """Writes directory/name through a temporary file in the same directory and a rename."""
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            # On disk before the rename, so a crash never leaves a renamed but empty file.
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, mode)
        os.replace(temp, os.path.join(directory, name))
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def write_output(directory, page, files):
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise ReportError(f"{directory}: cannot create the output directory: "
                          f"{error.strerror or error}") from None
    if not os.path.isdir(directory):
        raise ReportError(f"{directory}: not a directory")
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o666 & ~umask
    try:
        for name, data in files:
            write_atomic(directory, name, data, mode)
        write_atomic(directory, "index.html", page.encode("utf-8"), mode)
    except OSError as error:
        where = error.filename or directory
        raise ReportError(f"{where}: cannot write: {error.strerror or error}") from None


# ------------------------------------------------------------------ command line

class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: {message}\n")


def main(argv=None):
    parser = Parser(
        prog="report_html.py",
        description="Render a kseg segment report (JSON) as an HTML page with SVG charts: "
                    "segment sizes and revenue shares per scheme, the Pareto curve, segment "
                    "profiles, the k sweep and heatmaps of the cross-tabulations, each with "
                    "its table.",
        epilog="Writes DIR/index.html and DIR/chart-*.svg (temporary names, then renamed). "
               "Exit status: 0 written, 1 bad input or output (one line on stderr), 2 usage.")
    parser.add_argument("report", metavar="REPORT.json", help="the report written by kseg")
    parser.add_argument("--out", "-o", metavar="DIR", required=True,
                        help="output directory (created if missing; other files are kept)")
    parser.add_argument("--title", metavar="TEXT",
                        help="page title (default: the report's title)")
    args = parser.parse_args(argv)
    try:
        report = load_report(args.report)
        title = args.title or report["title"] or "kseg segment report"
        page, files = build(report, title)
        write_output(args.out, page, files)
    except ReportError as error:
        print(f"report_html: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a bug or an unexpected input: still one line, exit 1
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"report_html: {args.report}: cannot render: {type(error).__name__}: {message}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
