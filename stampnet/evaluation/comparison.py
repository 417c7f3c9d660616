"""One report comparing several evaluated runs, beside the published results (other data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stampnet.evaluation import anchors
from stampnet.evaluation.report import Report, write_metrics


def write_comparison(results: list[dict], out_dir: str | Path) -> Path:
    """One report comparing runs on their splits, beside the published anchors."""
    out_dir = Path(out_dir)
    report = Report("Comparison of runs")
    datasets = sorted({(r["dataset"], r["split"]) for r in results})
    if len(datasets) > 1:
        listed = "; ".join(f"{d} / {s}" for d, s in datasets)
        report.paragraph(
            f"These runs were evaluated on DIFFERENT data: {listed}. Their numbers are not "
            "comparable.",
            "note",
        )
    else:
        report.paragraph(f"All runs on {datasets[0][0]}, split '{datasets[0][1]}'.", "meta")
    for labels in sorted({r["labels"] for r in results if r.get("labels")}):
        report.paragraph(
            f"Labels from {labels}. For the real ZTF sample these are heuristic catalogue "
            "cross-matches, not ground truth.",
            "note",
        )
    rows, latent_rows = [], []
    for result in results:
        unit = "objects" if result["dataset_kind"] == "sequences" else "alerts"
        for name, scores in result["models"].items():
            label = f"{result['run']} / {name}"
            if scores["role"] == "classifier":
                excluded = sum(result["excluded"].values())
                rows.append([label, f"{scores['num_examples']} {unit}", excluded,
                             scores["accuracy"], scores["macro_f1"], scores["macro_recall"],
                             ", ".join(result["class_names"])])  # fmt: skip
                continue
            clusters = scores.get("clustering") or {}
            error = (scores.get("reconstruction_error") or {}).get("mean")
            latent_rows.append([label, f"{result['num_examples']} {unit}", scores["latent_dim"],
                                clusters.get("unsupervised_accuracy"), clusters.get("nmi"),
                                clusters.get("ari"), error])  # fmt: skip
    report.heading("Classifiers on this split")
    header = ["run / model", "examples", "excluded", "accuracy", "macro-F1", "balanced accuracy"]
    report.table(
        [*header, "classes"],
        rows,
        caption="Sequence models are scored per object (its first detections), the others per "
        "alert; 'excluded': examples of classes the model does not have.",
    )
    common = _common_class_accuracy(results)
    if common:
        report.paragraph(
            "The runs know different classes. On the examples whose true class all of them know ("
            + ", ".join(common["classes"])
            + "), each model predicting among its own classes:",
            "meta",
        )
        report.table(["run / model", "examples", "accuracy"], common["rows"])
    if latent_rows:
        report.heading("Latent spaces on this split")
        report.table(
            ["run / model", "examples", "latent dim", "unsup. accuracy", "NMI", "ARI",
             "reconstruction MSE"],
            latent_rows,
            caption="k-means (k = number of classes) on the latent means.",
        )  # fmt: skip
    report.heading("Published results (other data)")
    report.paragraph(anchors.CAVEAT, "note")
    report.table(
        ["source", "model", "metric", "value", "data", "classes"],
        [[a.source, a.model, a.metric, a.value_text(), a.data, a.classes] for a in anchors.ANCHORS],
        row_classes=["anchor"] * len(anchors.ANCHORS),
    )
    for result in results:
        for name, png in result.get("confusion_png", {}).items():
            report.heading(f"{result['run']} / {name}", 3)
            report.image(
                png, f"confusion matrices of {result['run']}", f"Full report: {result['report']}"
            )
    summary = {
        "runs": [
            {k: v for k, v in r.items() if k not in ("confusion_png", "arrays")} for r in results
        ],
        "common_classes": common,
        "anchors": anchors.anchors_as_dicts(),
        "anchor_caveat": anchors.CAVEAT,
    }
    write_metrics(summary, out_dir / "metrics.json")
    return report.write(out_dir / "report.html")


def _common_class_accuracy(results: list[dict]) -> dict | None:
    """Accuracy of every classifier on the examples of the classes that all runs share."""
    class_sets = [r["class_names"] for r in results if r["arrays"]["probabilities"]]
    if len(class_sets) < 2 or all(names == class_sets[0] for names in class_sets):
        return None
    shared = [name for name in class_sets[0] if all(name in names for names in class_sets)]
    rows = []
    for result in results:
        names = result["class_names"]
        labels = result["arrays"]["labels"]
        keep = np.isin(labels, [names.index(name) for name in shared])
        for model, probabilities in result["arrays"]["probabilities"].items():
            correct = probabilities[keep].argmax(axis=1) == labels[keep]
            accuracy = float(correct.mean()) if keep.any() else float("nan")
            rows.append([f"{result['run']} / {model}", int(keep.sum()), accuracy])
    return {"classes": shared, "rows": rows}
