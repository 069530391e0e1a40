"""`kseg report --html` (cli/report_html.py) end to end: renders tests/cli/report_sample.json and
variants of it, then looks at the page the way a person would, through Debian's headless Chromium:
every chart image loads (the page's own script counts them), every segment name and table row is
there, and a screenshot is not blank where the charts are. Also: no k sweep, an unclear knee,
HTML-special segment names, bad input (one line on stderr, exit 1), usage errors (exit 2), and an
output directory whose other files are kept."""
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import Cases, scratch_dir  # noqa: E402

SOURCE_DIR = os.environ.get("KSEG_SOURCE_DIR",
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RENDERER = os.path.join(SOURCE_DIR, "cli", "report_html.py")
SAMPLE = os.path.join(SOURCE_DIR, "tests", "cli", "report_sample.json")
WINDOW = (1280, 2400)
EVIL = '<script>alert(1)</script> & "quotes"'
DOLLARS = "Champions: spend > $1,000 & < $5,000"   # '$' must not start matplotlib mathtext
TIMINGS = {}


# ---------------------------------------------------------------- helpers

def sample():
    with open(SAMPLE, encoding="utf-8") as f:
        return json.load(f)


def render(tmp, report, name, *extra):
    """Writes report (a dict, or text written as is) to tmp/name.json, renders it into
    tmp/name/; returns (CompletedProcess, json path, output directory)."""
    src = os.path.join(tmp, name + ".json")
    with open(src, "w", encoding="utf-8") as f:
        f.write(report if isinstance(report, str) else json.dumps(report, ensure_ascii=False))
    out = os.path.join(tmp, name)
    start = time.monotonic()
    result = subprocess.run([sys.executable, RENDERER, src, "--out", out, *extra],
                            capture_output=True, text=True, timeout=120)
    TIMINGS[f"render {name}"] = time.monotonic() - start
    return result, src, out


def render_ok(tmp, report, name, *extra):
    result, _, out = render(tmp, report, name, *extra)
    assert result.returncode == 0, f"renderer exit {result.returncode}: {result.stderr.strip()}"
    assert os.path.isfile(os.path.join(out, "index.html")), "no index.html written"
    return out


def expect_failure(tmp, report, fragments, name="bad"):
    result, src, out = render(tmp, report, name)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, f"exit {result.returncode}, expected 1: {result.stderr}"
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    for fragment in [src, *fragments]:
        assert fragment in lines[0], f"'{fragment}' not in: {lines[0]}"
    assert not os.path.exists(out), "an output directory was created for bad input"
    return lines[0]


def chromium_binary():
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium")
                                        else None)
    assert path, ("chromium not found: the HTML report test needs Debian's headless Chromium; "
                  "run scripts/setup.sh to install it")
    return path


def chromium(tmp, page, *mode):
    """Runs headless Chromium on page with a private profile; returns stdout."""
    profile = os.path.join(tmp, "chromium-profile")
    command = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu",
               "--no-first-run", "--disable-extensions", "--disable-dev-shm-usage",
               "--hide-scrollbars", "--force-device-scale-factor=1",
               f"--user-data-dir={profile}", "--virtual-time-budget=10000",
               f"--window-size={WINDOW[0]},{WINDOW[1]}", *mode, "file://" + os.path.abspath(page)]
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=90)
    TIMINGS[f"chromium {mode[0].split('=')[0]} {os.path.basename(os.path.dirname(page))}"] = \
        time.monotonic() - start
    assert result.returncode == 0, (f"chromium exit {result.returncode}: "
                                    f"{result.stderr.strip()[-600:]}")
    return result.stdout


class Dom(HTMLParser):
    """What the dumped DOM shows: body attributes, chart figures (and the section holding each),
    tables (header cells and body rows as lists of cell texts), element counts, all text."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.body = {}
        self.figures = []
        self.images = []
        self.sections_with_charts = set()
        self.tables = {}
        self.tags = {}
        self.text = []
        self._section = None
        self._table = None
        self._part = None
        self._row = None
        self._cell = None
        self.feed(text)
        self.close()
        self.all_text = " ".join(" ".join(self.text).split())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "body":
            self.body = attrs
        elif tag == "section":
            self._section = attrs.get("id")
        elif tag == "figure" and "chart" in (attrs.get("class") or "").split():
            self.figures.append(attrs)
            self.sections_with_charts.add(self._section)
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self._table = {"head": [], "rows": []}
            self.tables[attrs.get("id")] = self._table
        elif tag in ("thead", "tbody", "tfoot"):
            self._part = tag
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._part == "thead":
                self._table["head"] = self._row
            elif self._part == "tbody":
                self._table["rows"].append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def dump(tmp, out):
    text = chromium(tmp, os.path.join(out, "index.html"), "--dump-dom")
    assert "<body" in text, f"chromium dumped no DOM: {text[:200]!r}"
    return Dom(text)


def expected_charts(report):
    count = sum(1 for s in report["schemes"] if s["segments"])      # sizes, one per scheme
    count += 1                                                       # Pareto curve
    count += 1 if report.get("profile") else 0                       # profile
    count += 1 if report.get("k_sweep") and report["k_sweep"]["entries"] else 0
    return count + len(report.get("crosstabs") or [])                # heatmaps


def check_charts_loaded(dom, report):
    figures = len(dom.figures)
    loaded, expected = dom.body.get("data-charts-loaded"), dom.body.get("data-charts-expected")
    assert loaded is not None and expected is not None, f"body attributes missing: {dom.body}"
    assert int(expected) == figures == expected_charts(report), \
        f"charts expected {expected}, figures {figures}, from the input {expected_charts(report)}"
    assert int(loaded) == int(expected), f"only {loaded} of {expected} chart images loaded"
    for figure in dom.figures:
        assert (figure.get("id") or "").startswith("chart-"), f"figure id {figure.get('id')}"


def check_rows(dom, table_id, count):
    assert table_id in dom.tables, f"no table {table_id} (tables: {sorted(dom.tables)})"
    rows = dom.tables[table_id]["rows"]
    assert len(rows) == count, f"{table_id}: {len(rows)} rows, expected {count}"
    return rows


class Sample:
    """The sample, rendered once and looked at once by Chromium (shared by the cases)."""
    report = None
    out = None
    dom = None


def sample_rendered(tmp):
    if Sample.out is None:
        report = sample()
        keep = os.path.join(tmp, "sample")
        os.makedirs(keep)
        with open(os.path.join(keep, "keep.txt"), "w") as f:
            f.write("not the renderer's\n")
        Sample.report, Sample.out = report, render_ok(tmp, report, "sample")
    return Sample.report, Sample.out


def sample_dom(tmp):
    report, out = sample_rendered(tmp)
    if Sample.dom is None:
        Sample.dom = dump(tmp, out)
    return report, out, Sample.dom


# ---------------------------------------------------------------- cases

def case_sample_files(tmp):
    report, out = sample_rendered(tmp)
    names = sorted(os.listdir(out))
    charts = [n for n in names if n.endswith(".svg")]
    assert len(charts) == expected_charts(report), f"chart files: {charts}"
    assert "keep.txt" in names, "a file already in the output directory was removed"
    leftovers = [n for n in names if n.startswith(".") or n.endswith(".tmp")]
    assert not leftovers, f"temporary files left: {leftovers}"
    with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
        page = f.read()
    for needle in ("http://", "https://", "//cdn", "@import", "<link"):
        assert needle not in page, f"the page reaches out to the network: {needle!r}"
    for chart in charts:
        with open(os.path.join(out, chart), "rb") as f:
            head = f.read(2000)
        assert b"<svg" in head and b'width="720pt"' in head, f"{chart} is not a 10-inch SVG"


def case_sample_page(tmp):
    report, _, dom = sample_dom(tmp)
    check_charts_loaded(dom, report)
    assert dom.sections_with_charts == {"segments", "pareto", "profile", "ksweep", "crosstabs"}, \
        f"sections with charts: {dom.sections_with_charts}"
    assert len(dom.sections_with_charts) == 5
    assert report["title"] in dom.all_text, "the title is missing"
    for fragment in ("4,338", "8,911,407.90", "monetary", "0.2.0", report["generated"]):
        assert fragment in dom.all_text, f"summary lacks {fragment!r}"
    assert dom.tags.get("script") == 1, f"{dom.tags.get('script')} script elements"


def case_sample_segment_tables(tmp):
    report, _, dom = sample_dom(tmp)
    features = report["features"]
    for scheme in report["schemes"]:
        rows = check_rows(dom, f"table-segments-{scheme['name']}", len(scheme["segments"]))
        head = dom.tables[f"table-segments-{scheme['name']}"]["head"]
        assert len(head) == 9 + len(features), f"{scheme['name']} header: {head}"
        for feature in features:
            assert f"mean {feature}" in head, f"no mean {feature} column in {head}"
        for row, segment in zip(rows, scheme["segments"]):
            assert row[0] == str(segment["priority"]) and row[1] == segment["name"], \
                f"{scheme['name']}: row {row[:2]} for {segment['name']}"
            assert row[2] == f"{segment['customers']:,}", f"customers {row[2]}"
        for segment in scheme["segments"]:
            assert segment["name"] in dom.all_text, f"segment {segment['name']!r} not on the page"


def case_sample_other_tables(tmp):
    report, _, dom = sample_dom(tmp)
    primary = report["schemes"][0]
    check_rows(dom, "table-pareto", len(primary["segments"]))
    check_rows(dom, "table-profile", len(report["profile"]["segments"]))
    rows = check_rows(dom, "table-ksweep", len(report["k_sweep"]["entries"]))
    assert [r[0] for r in rows] == [str(e["k"]) for e in report["k_sweep"]["entries"]]
    rows = check_rows(dom, "table-merges", len(report["merges"]))
    merge = report["merges"][0]
    assert rows[0][1] == merge["from"] and rows[0][2] == merge["into"], f"merge row {rows[0]}"
    tab = report["crosstabs"][0]
    rows = check_rows(dom, "table-crosstab-1", len(tab["row_names"]))
    assert len(dom.tables["table-crosstab-1"]["head"]) == len(tab["column_names"]) + 2
    assert [r[0] for r in rows] == tab["row_names"]
    assert rows[0][1] == f"{tab['counts'][0][0]:,}", f"first count {rows[0][1]}"
    assert "no k sweep in this run" not in dom.all_text


def case_sample_screenshot(tmp):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import numpy as np
    _, out, dom = sample_dom(tmp)
    shot = os.path.join(tmp, "sample.png")
    chromium(tmp, os.path.join(out, "index.html"), f"--screenshot={shot}")
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0]), f"screenshot {pixels.shape}"
    rgb = (pixels[..., :3] * 255).round().astype(np.int32)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    colors = len(np.unique(codes))
    assert colors > 200, f"screenshot has only {colors} colours: blank?"
    visible = 0
    for figure in dom.figures:
        x, y, w, h = map(int, figure["data-box"].split(","))
        if y + h > WINDOW[1]:
            continue
        visible += 1
        box = rgb[y:y + h, x:x + w]
        ink = float((box.min(axis=2) < 235).mean())
        assert ink > 0.03, f"{figure['id']}: only {ink:.1%} non-white pixels in the chart area"
        assert len(np.unique(codes[y:y + h, x:x + w])) > 30, f"{figure['id']}: too few colours"
        if figure["id"].startswith("chart-sizes"):
            for name, colour in (("blue", (31, 119, 180)), ("orange", (255, 127, 14))):
                near = (np.abs(box - np.array(colour)).max(axis=2) <= 12).sum()
                assert near > 1000, f"{figure['id']}: only {near} {name} bar pixels"
    assert visible >= 2, f"only {visible} charts within the first {WINDOW[1]} pixels"


def variant_no_sweep_evil():
    """The sample without a k sweep, with HTML-special and '$' names in every place."""
    report = sample()
    report["k_sweep"] = None
    old = report["schemes"][0]["segments"][1]["name"]
    report["schemes"][0]["segments"][1]["name"] = EVIL
    for segment in report["profile"]["segments"]:
        if segment["name"] == old:
            segment["name"] = EVIL
    tab = report["crosstabs"][0]
    tab["row_names"] = [EVIL if n == old else n for n in tab["row_names"]]
    tab["column_names"] = [DOLLARS if n == "Champions" else n for n in tab["column_names"]]
    report["schemes"][1]["segments"][0]["name"] = DOLLARS
    report["merges"][0]["into"] = EVIL
    report["generated"] = "<img src=x onerror=alert(2)>"
    return report


class Variant:
    report = None
    out = None
    dom = None


def variant_dom(tmp):
    if Variant.out is None:
        Variant.report = variant_no_sweep_evil()
        Variant.out = render_ok(tmp, Variant.report, "evil", "--title", "<b>Q3</b> & co")
        Variant.dom = dump(tmp, Variant.out)
    return Variant.report, Variant.out, Variant.dom


def case_no_k_sweep(tmp):
    report, _, dom = variant_dom(tmp)
    check_charts_loaded(dom, report)
    assert len(dom.figures) == expected_charts(sample()) - 1, "expected one chart fewer"
    assert "no k sweep in this run" in dom.all_text, "no 'no k sweep in this run' text"
    assert "ksweep" not in dom.sections_with_charts
    assert "table-ksweep" not in dom.tables


def case_html_escaped(tmp):
    report, out, dom = variant_dom(tmp)
    assert dom.tags.get("script") == 1, f"{dom.tags.get('script')} script elements: injected"
    assert "b" not in dom.tags, "the --title markup became an element"
    assert len(dom.images) == len(dom.figures), "an image element was injected"
    assert all(not k.startswith("on") for img in dom.images for k in img), "event handler"
    assert EVIL in dom.all_text and DOLLARS in dom.all_text, "special names not shown as text"
    assert "<b>Q3</b> & co" in dom.all_text, "the title is not shown as text"
    rows = dom.tables["table-segments-kmeans"]["rows"]
    assert rows[1][1] == EVIL, f"kmeans row 2 shows {rows[1][1]!r}"
    assert dom.tables["table-merges"]["rows"][0][2] == EVIL
    with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
        page = f.read()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "<script>alert(1)" not in page


def case_unclear_knee(tmp):
    report = sample()
    report["schemes"] = report["schemes"][:1]          # fewer charts: a quicker render
    report["crosstabs"] = []
    report["k_sweep"]["clear"] = False
    report["k_sweep"]["rule"] = "knee"
    report["k_sweep"]["note"] = "inertia falls smoothly; k=6 taken from the config"
    report["k_sweep"]["entries"][0]["silhouette"] = None          # a metric may be null
    for entry in report["k_sweep"]["entries"]:
        entry["davies_bouldin"] = None                            # a whole panel without values
    out = render_ok(tmp, report, "unclear")
    with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
        dom = Dom(f.read())
    assert "no clear knee" in dom.all_text, "'no clear knee' not shown"
    notice = dom.all_text.index("no clear knee")
    assert dom.all_text.index("4. Choice of k") < notice, "the notice is not in the k section"
    assert "inertia falls smoothly" in dom.all_text, "the note is not shown"
    assert len(dom.figures) == expected_charts(report) == 4, f"{len(dom.figures)} charts"
    rows = check_rows(dom, "table-ksweep", len(report["k_sweep"]["entries"]))
    assert rows[0][2] == "–" and rows[0][4] == "–", f"null metrics shown as {rows[0]}"


def case_malformed_json(tmp):
    text = '{\n "kseg_version": "0.2.0",\n "customers": 4338,,\n "schemes": []\n}\n'
    line = expect_failure(tmp, text, ["not JSON", "line 3"])
    assert "Traceback" not in line
    expect_failure(tmp, "", ["not JSON"], name="empty")
    expect_failure(tmp, "[1, 2]", ["top level"], name="list")


def case_missing_key(tmp):
    report = sample()
    del report["schemes"]
    expect_failure(tmp, report, ["missing key 'schemes'"])
    report = sample()
    del report["schemes"][1]["segments"][0]["revenue_share"]
    expect_failure(tmp, report, ["schemes[1].segments[0]", "missing key 'revenue_share'"],
                   name="nested")
    report = sample()
    report["customers"] = "many"
    expect_failure(tmp, report, ["customers", "expected a number"], name="type")
    report = sample()
    report["primary_scheme"] = "nope"
    expect_failure(tmp, report, ["primary_scheme", "'nope'"], name="primary")
    result = subprocess.run([sys.executable, RENDERER, os.path.join(tmp, "absent.json"),
                             "--out", os.path.join(tmp, "absent")],
                            capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "absent.json" in lines[0], \
        f"missing file: exit {result.returncode}, {lines}"


def case_usage(tmp):
    for args, code in (([], 2), ([SAMPLE], 2), ([SAMPLE, "--out"], 2), (["--bogus"], 2),
                       (["--help"], 0)):
        result = subprocess.run([sys.executable, RENDERER, *args], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == code, f"{args}: exit {result.returncode}, expected {code}"
        if code == 0:
            assert "--out" in result.stdout and "--title" in result.stdout, result.stdout
        else:
            assert "usage:" in result.stderr, f"{args}: no usage line: {result.stderr}"


def main():
    cases = Cases()
    start = time.monotonic()
    with scratch_dir() as tmp:
        cases.run("chromium is installed", chromium_binary)
        cases.run("sample: chart files, kept files, no temp files", case_sample_files, tmp)
        cases.run("sample: all charts load in Chromium", case_sample_page, tmp)
        cases.run("sample: segment tables and names", case_sample_segment_tables, tmp)
        cases.run("sample: Pareto, profile, k sweep, merge, crosstab tables",
                  case_sample_other_tables, tmp)
        cases.run("sample: screenshot is not blank where the charts are",
                  case_sample_screenshot, tmp)
        cases.run("k_sweep null: 'no k sweep in this run', one chart fewer", case_no_k_sweep,
                  tmp)
        cases.run("HTML-special names are escaped", case_html_escaped, tmp)
        cases.run("clear=false: 'no clear knee' shown", case_unclear_knee, tmp)
        cases.run("malformed JSON: exit 1, one line with file and line", case_malformed_json,
                  tmp)
        cases.run("missing key: exit 1, one line naming the key", case_missing_key, tmp)
        cases.run("usage errors exit 2, --help exits 0", case_usage, tmp)
    for what, seconds in TIMINGS.items():
        if what.startswith(("render sample", "render evil", "render unclear", "chromium")):
            print(f"     {what}: {seconds:.1f} s")
    print(f"     total: {time.monotonic() - start:.1f} s")
    cases.finish()


if __name__ == "__main__":
    main()
