"""`kseg run`, `kseg report` and `kseg predict` with a pipeline model, end to end on a generated
transaction log: every customer in exactly one segment per scheme, shares summing to 1, merging
leaving no segment below the thresholds, predict reproducing the training labels and segments,
the k sweep's metrics against scikit-learn on the same prepared features and labels, evaluation
means and medians against pandas, thread-count independence, and one-line config errors."""
import json
import os
import sys

import h5py
import numpy as np
import pandas as pd
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
from common import Cases, run_kseg, scratch_dir  # noqa: E402

BASE_CONFIG = """\
title: test run
input:
  transactions: tx.h5
rfm:
  frequency: invoices
prepare:
  features: [recency, frequency, monetary, tenure]
  transforms: {{frequency: log1p, monetary: log1p}}
  clip: {{monetary: [0.01, 0.99]}}
  scaling: {scaling}
  weights: {{monetary: 1.5}}
cluster:
  k: {k}
  seed: 3
  silhouette_sample: 0
label:
  min_customer_share: {min_share}
  min_revenue_share: {min_revenue}
  merge: {merge}
{extra}
schemes:
  rfm: true
  lifecycle: {{new_days: 60, lapsed_days: 200}}
  categories: [channel]
  bands: {{monetary: [100, 1000]}}
report:
  value: monetary
  crosstab: [[segment, rfm], [lifecycle, channel]]
  html: false
"""


def texts(dataset):
    return [v.decode() if isinstance(v, bytes) else v for v in dataset[:]]


def write_config(directory, name="run.yaml", scaling="standard", k="5", min_share=0.0,
                 min_revenue=0.0, merge="nearest", extra=""):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(BASE_CONFIG.format(scaling=scaling, k=k, min_share=min_share,
                                   min_revenue=min_revenue, merge=merge, extra=extra))
    return path


def run_pipeline(directory, output, *options, **config):
    path = write_config(directory, **config)
    result = run_kseg("run", path, "-o", os.path.join(directory, output), *options)
    with open(os.path.join(directory, output, "report.json")) as f:
        report = json.load(f)
    return result, report


def prepared_features(result_path):
    """The prepared features recomputed in numpy from /features and /model/prepare (the test's
    own implementation of the documented formula)."""
    with h5py.File(result_path, "r") as f:
        names = texts_attribute(f["/model/centroids"].attrs["columns"])
        x = np.column_stack([f["/features/" + name][:] for name in names])
        p = {key: f["/model/prepare/" + key][:] for key in
             ("transform", "clip_low", "clip_high", "center", "scale", "weight")}
    x = np.clip(x, p["clip_low"], p["clip_high"])
    x = np.where(p["transform"] == 1, np.log1p(x), x)
    return p["weight"] * (x - p["center"]) / p["scale"]


def texts_attribute(values):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def main():
    cases = Cases()
    with scratch_dir() as directory:
        run_kseg("generate", "transactions", "--transactions", 60000, "--customers", 4000,
                 "--seed", 11, "-o", os.path.join(directory, "tx.h5"))
        _, report = run_pipeline(directory, "out", min_share=0.05)
        result = os.path.join(directory, "out", "result.h5")

        def exact_partition_per_scheme():
            with h5py.File(result, "r") as f:
                n = f["/labels/id"].shape[0]
                for scheme in report["schemes"]:
                    labels = f["/labels/" + scheme["name"]][:]
                    names = texts(f["/schemes/%s/names" % scheme["name"]])
                    assert labels.shape == (n,), scheme["name"]
                    assert labels.min() >= 0 and labels.max() < len(names), scheme["name"]
                    assert len(set(names)) == len(names), "duplicate segment names"
                    counts = np.bincount(labels, minlength=len(names))
                    by_name = {s["name"]: s["customers"] for s in scheme["segments"]}
                    for index, name in enumerate(names):
                        assert by_name.get(name, 0) == counts[index], (scheme["name"], name)
                    assert sum(by_name.values()) == n
            names = {s["name"] for s in report["schemes"]}
            assert {"segment", "rfm", "lifecycle", "channel", "monetary"} <= names, names
            # The HDF5 segment tables hold the same rows as the JSON, in priority order.
            with h5py.File(result, "r") as f:
                for scheme in report["schemes"]:
                    table = f["/report/" + scheme["name"]]
                    assert texts(table["name"]) == [s["name"] for s in scheme["segments"]]
                    assert list(table["customers"][:]) == [s["customers"] for s in
                                                           scheme["segments"]]
                    assert list(table["priority"][:]) == list(range(1, len(scheme["segments"]) + 1))

        def shares_sum_to_one():
            for scheme in report["schemes"]:
                segments = scheme["segments"]
                assert abs(sum(s["customer_share"] for s in segments) - 1) < 1e-9
                assert abs(sum(s["revenue_share"] for s in segments) - 1) < 1e-9
                assert abs(segments[-1]["cumulative_revenue_share"] - 1) < 1e-9
                priorities = [s["priority"] for s in segments]
                assert priorities == list(range(1, len(segments) + 1))
                revenues = [s["revenue"] for s in segments]
                assert revenues == sorted(revenues, reverse=True), scheme["name"]

        def merging_respects_thresholds():
            segments = report["schemes"][0]["segments"]
            assert len(segments) == 1 or min(s["customer_share"] for s in segments) >= 0.05
            for merge in report["merges"]:
                assert merge["customer_share"] < 0.05, merge

        def evaluation_matches_pandas():
            with h5py.File(result, "r") as f:
                frame = pd.DataFrame({name: f["/features/" + name][:] for name in
                                      report["features"]})
                frame["segment"] = f["/labels/segment"][:]
                names = texts(f["/schemes/segment/names"])
            grouped = frame.groupby("segment")
            for stats in report["schemes"][0]["segments"]:
                index = names.index(stats["name"])
                for feature in report["features"]:
                    mean = grouped[feature].mean()[index]
                    median = grouped[feature].median()[index]
                    assert abs(stats["mean"][feature] - mean) <= 1e-9 * max(1, abs(mean))
                    assert abs(stats["median"][feature] - median) <= 1e-9 * max(1, abs(median))
                revenue = grouped["monetary"].sum()[index]
                assert abs(stats["revenue"] - revenue) <= 1e-9 * abs(revenue)

        def predict_reproduces_training():
            for source in (result + ":/features",
                           os.path.join(directory, "out", "rfm.h5") + ":/rfm"):
                labels_path = os.path.join(directory, "predicted.h5")
                output = run_kseg("predict", "--model", result, source, "-o", labels_path)
                with h5py.File(result, "r") as f, h5py.File(labels_path, "r") as g:
                    assert np.array_equal(f["/labels/cluster"][:], g["/labels/cluster"][:])
                    assert np.array_equal(f["/labels/segment"][:], g["/labels/segment"][:])
                    assert texts(f["/schemes/segment/names"]) == texts(g["/labels/segment_names"])
                for stats in report["schemes"][0]["segments"]:
                    assert stats["name"] in output.stdout

        def prepared_features_match_model():
            # The features recomputed from the saved prepare parameters, assigned to the nearest
            # saved centroid, give the saved labels (the fit ends with an assignment step).
            x = prepared_features(result)
            with h5py.File(result, "r") as f:
                labels = f["/labels/cluster"][:]
                centroids = f["/model/centroids"][:]
            distances = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
            assert np.array_equal(distances.argmin(axis=1), labels)

        def thread_count_does_not_matter():
            run_pipeline(directory, "out1", "--threads", "1", min_share=0.05)
            with h5py.File(result, "r") as f, \
                    h5py.File(os.path.join(directory, "out1", "result.h5"), "r") as g:
                for name in ("cluster", "segment", "rfm", "lifecycle", "channel"):
                    assert np.array_equal(f["/labels/" + name][:], g["/labels/" + name][:]), name
                assert np.array_equal(f["/model/centroids"][:], g["/model/centroids"][:])

        def report_command_and_files():
            output = run_kseg("report", result, "--json", os.path.join(directory, "again.json"),
                              "--csv", os.path.join(directory, "again.csv"))
            with open(os.path.join(directory, "again.json")) as f:
                assert json.load(f) == report
            table = pd.read_csv(os.path.join(directory, "again.csv"))
            assert len(table) == sum(len(s["segments"]) for s in report["schemes"])
            for stats in report["schemes"][0]["segments"]:
                assert stats["name"] in output.stdout
            customers = pd.read_csv(os.path.join(directory, "out", "customers.csv"))
            with h5py.File(result, "r") as f:
                assert np.array_equal(customers["id"].to_numpy(), f["/labels/id"][:])
                names = texts(f["/schemes/segment/names"])
                assert list(customers["segment"]) == [names[i] for i in f["/labels/segment"][:]]
                config = texts(f["/config/yaml"])[0]
            assert "silhouette_sample: 0" in config

        def html_report_is_drawn():
            html = os.path.join(directory, "html")
            run_kseg("report", result, "--html", html, "-q")
            with open(os.path.join(html, "index.html"), encoding="utf-8") as f:
                page = f.read()
            charts = [name for name in os.listdir(html) if name.endswith(".svg")]
            assert len(charts) >= 4, charts
            for chart in charts:
                assert chart in page, chart
            for stats in report["schemes"][0]["segments"]:
                assert stats["name"].replace("&", "&amp;") in page, stats["name"]
            assert not [name for name in os.listdir(directory) if ".report.json" in name]

        def sweep_metrics_match_sklearn():
            _, swept = run_pipeline(directory, "sweep", "--k", "2..6")
            sweep = swept["k_sweep"]
            assert [e["k"] for e in sweep["entries"]] == [2, 3, 4, 5, 6]
            inertias = [e["inertia"] for e in sweep["entries"]]
            assert inertias == sorted(inertias, reverse=True)
            assert 2 <= sweep["chosen"] <= 6 and sweep["note"]
            path = os.path.join(directory, "sweep", "result.h5")
            x = prepared_features(path)
            with h5py.File(path, "r") as f:
                labels = f["/labels/cluster"][:]
                assert f["/model/centroids"].shape[0] == sweep["chosen"]
            entry = next(e for e in sweep["entries"] if e["k"] == sweep["chosen"])
            assert abs(entry["silhouette"] - silhouette_score(x, labels)) < 1e-9
            assert abs(entry["calinski_harabasz"] - calinski_harabasz_score(x, labels)) < \
                1e-9 * entry["calinski_harabasz"]
            assert abs(entry["davies_bouldin"] - davies_bouldin_score(x, labels)) < 1e-9

        def merge_into_other():
            _, other = run_pipeline(directory, "other", k="8", min_share=0.15, merge="other")
            segments = other["schemes"][0]["segments"]
            assert len(segments) == 1 or min(s["customer_share"] for s in segments) >= 0.15
            assert other["merges"], "expected merges at a 15 % threshold with k = 8"

        def rules_name_segments():
            rules = os.path.join(directory, "rules.yaml")
            with open(rules, "w") as f:
                f.write("segments:\n  - name: Big spenders\n    when: {monetary: high}\n"
                        "  - name: Recent\n    when: {recency: low}\nfallback: Others\n")
            _, named = run_pipeline(directory, "rules", extra="  rules: rules.yaml")
            names = {s["name"] for s in named["schemes"][0]["segments"]}
            assert names <= {"Big spenders", "Recent", "Others"} and names, names

        def customer_table_input():
            run_kseg("generate", "customers", "--n", 3000, "--seed", 5, "-o",
                     os.path.join(directory, "customers.h5"))
            path = os.path.join(directory, "customers.yaml")
            with open(path, "w") as f:
                f.write("input:\n  customers: customers.h5:/customers/features\n"
                        "prepare:\n  features: [recency_days, frequency, monetary]\n"
                        "  scaling: robust\ncluster: {k: 4, seed: 2}\n"
                        "schemes:\n  bands: {age: [30, 50]}\n"
                        "report: {value: monetary, html: false}\n")
            out = os.path.join(directory, "customers-out")
            run_kseg("run", path, "-o", out, "-q")
            labels_path = os.path.join(directory, "customers-labels.h5")
            run_kseg("predict", "--model", os.path.join(out, "result.h5"),
                     os.path.join(directory, "customers.h5") + ":/customers/features", "-o",
                     labels_path)
            with h5py.File(os.path.join(out, "result.h5"), "r") as f, \
                    h5py.File(labels_path, "r") as g, \
                    h5py.File(os.path.join(directory, "customers.h5"), "r") as c:
                assert np.array_equal(f["/labels/segment"][:], g["/labels/segment"][:])
                assert np.array_equal(f["/labels/id"][:], c["/customers/id"][:])
                age = c["/customers/features"][:, 6]
                bands = f["/labels/age"][:]
                names = texts(f["/schemes/age/names"])
                expected = np.digitize(age, [30, 50])
                assert [names[b] for b in bands] == [["< 30", "30 to < 50", ">= 50"][e]
                                                     for e in expected]

        def config_errors():
            cases_ = [
                ("cluster:\n  k: 3\n  sede: 1\n", "unknown key 'sede'", "did you mean 'seed'"),
                ("input:\n  transactions: tx.h5\nclustr: {k: 3}\n", "unknown key 'clustr'",
                 "did you mean 'cluster'"),
                ("input:\n  transactions: tx.h5\nrfm:\n  frequncy: lines\n",
                 "unknown key 'frequncy'", "did you mean 'frequency'"),
                ("input:\n  transactions: tx.h5\ncluster: {k: [3\n", "bad.yaml:", "line"),
                ("input: {}\n", "exactly one of 'transactions'", ""),
            ]
            for text, expected, hint in cases_:
                path = os.path.join(directory, "bad.yaml")
                with open(path, "w") as f:
                    f.write(text)
                completed = run_kseg("run", path, "-o", os.path.join(directory, "bad"),
                                     check=False)
                assert completed.returncode == 1, (text, completed.returncode, completed.stderr)
                lines = completed.stderr.strip().splitlines()
                assert len(lines) == 1, completed.stderr
                assert expected in lines[0] and hint in lines[0], lines[0]
                assert "bad.yaml" in lines[0], lines[0]

        def rules_errors():
            bad_rules = [
                ("segments:\n  - name: A\n    when: {monetery: high}\nfallback: B\n",
                 "unknown feature 'monetery'", "did you mean 'monetary'"),
                ("segments:\n  - name: A\n    when: {monetary: huge}\nfallback: B\n",
                 "huge", "low, mid, high"),
                ("segments:\n  - name: A\n    when: {monetary: high}\n", "no 'fallback'", ""),
                ("segments:\n  - name: A\n    when: {monetary: high\nfallback: B\n", ":4:", ""),
            ]
            for text, expected, hint in bad_rules:
                with open(os.path.join(directory, "bad_rules.yaml"), "w") as f:
                    f.write(text)
                path = write_config(directory, name="bad.yaml", extra="  rules: bad_rules.yaml")
                completed = run_kseg("run", path, "-o", os.path.join(directory, "bad"),
                                     check=False)
                assert completed.returncode == 1, (text, completed.stderr)
                line = completed.stderr.strip()
                assert "\n" not in line and expected in line and hint in line, line
                assert "bad_rules.yaml" in line, line

        def predict_refuses_other_feature_set():
            other = os.path.join(directory, "other_features.h5")
            with h5py.File(other, "w") as f:
                f["customers/age"] = np.arange(10.0)
                f["customers/income"] = np.arange(10.0)
            completed = run_kseg("predict", "--model", result, other + ":/customers", "-o",
                                 os.path.join(directory, "p.h5"), check=False)
            assert completed.returncode == 1
            line = completed.stderr.strip()
            assert "\n" not in line and "recency" in line, line
            assert not os.path.exists(os.path.join(directory, "p.h5"))

        cases.run("exact_partition_per_scheme", exact_partition_per_scheme)
        cases.run("shares_sum_to_one", shares_sum_to_one)
        cases.run("merging_respects_thresholds", merging_respects_thresholds)
        cases.run("evaluation_matches_pandas", evaluation_matches_pandas)
        cases.run("predict_reproduces_training", predict_reproduces_training)
        cases.run("prepared_features_match_model", prepared_features_match_model)
        cases.run("thread_count_does_not_matter", thread_count_does_not_matter)
        cases.run("report_command_and_files", report_command_and_files)
        cases.run("html_report_is_drawn", html_report_is_drawn)
        cases.run("sweep_metrics_match_sklearn", sweep_metrics_match_sklearn)
        cases.run("merge_into_other", merge_into_other)
        cases.run("rules_name_segments", rules_name_segments)
        cases.run("customer_table_input", customer_table_input)
        cases.run("config_errors", config_errors)
        cases.run("rules_errors", rules_errors)
        cases.run("predict_refuses_other_feature_set", predict_refuses_other_feature_set)
    cases.finish()


if __name__ == "__main__":
    main()
