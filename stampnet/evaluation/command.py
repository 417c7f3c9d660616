"""Evaluate runs on a dataset split: metrics.json, figures and a self-contained report.html.

``stampnet evaluate RUN [RUN ...]`` (or ``python evaluate.py``). A RUN is a run folder
(``runs/<model>-<timestamp>/``) or a bare ``.keras`` file such as an ALeRCE import. Each run gets
``metrics.json``, ``predictions.npz`` and ``report.html`` in ``<run>/evaluation/<dataset>-<split>/``
(for a ``.keras`` file: beside it, or under ``--out``); several runs also get a comparison report in
``--out`` (default ``runs/comparison-<timestamp>/``), next to the published results (numbers from
other data, labelled as such).
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np

from stampnet.evaluation import anchors, metrics, plots
from stampnet.evaluation.report import Report, classification_table, write_metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders or .keras files")
    parser.add_argument("--data", default=None, help="dataset directory (default: the run's own)")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--out", default=None, help="folder of the comparison report")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="evaluate at most this many examples of the split",
    )
    parser.add_argument("--gallery-size", type=int, default=6, help="mistakes shown per model")
    parser.add_argument("--seed", type=int, default=0, help="UMAP seed")
    parser.add_argument("--umap-neighbors", type=int, default=15)
    parser.add_argument("--umap-min-dist", type=float, default=0.1)


def run(args: argparse.Namespace) -> int:
    options = EvaluationOptions.from_args(args)
    try:
        results = [
            evaluate_run(
                path, data_dir=args.data, split=args.split, out_dir=args.out, options=options
            )
            for path in args.runs
        ]
    except ValueError as error:  # e.g. a model refusing data it was not built for
        raise SystemExit(f"stampnet evaluate: {error}") from error
    for result in results:
        print(f"{result['run']}: {result['report']}")
    if len(results) > 1 or args.out:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = Path(args.out) if args.out else Path("runs") / f"comparison-{stamp}"
        print(f"comparison: {write_comparison(results, out_dir)}")
    return 0


class EvaluationOptions:
    """Knobs of an evaluation (all recorded in metrics.json).

    Args:
        batch_size: examples per model call.
        max_examples: stop after this many examples of the split (None: all).
        gallery_size: most confident mistakes shown per classifier.
        seed, umap_neighbors, umap_min_dist: UMAP parameters.
    """

    def __init__(
        self,
        batch_size=64,
        max_examples=None,
        gallery_size=6,
        seed=0,
        umap_neighbors=15,
        umap_min_dist=0.1,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, received {batch_size}")
        self.batch_size = batch_size
        self.max_examples = max_examples
        self.gallery_size = gallery_size
        self.seed = seed
        self.umap_neighbors = umap_neighbors
        self.umap_min_dist = umap_min_dist

    @classmethod
    def from_args(cls, args) -> EvaluationOptions:
        return cls(
            args.batch_size,
            args.max_examples,
            args.gallery_size,
            args.seed,
            args.umap_neighbors,
            args.umap_min_dist,
        )

    def to_dict(self) -> dict:
        return dict(vars(self))


def evaluate_run(path, *, data_dir=None, split="test", out_dir=None, options=None) -> dict:
    """Evaluates one run on one split; writes its files and returns its metrics."""
    from stampnet.data.card import load_card
    from stampnet.evaluation import runner

    options = options or EvaluationOptions()
    loaded = runner.load_run(path)
    data_dir = runner.resolve_data_dir(loaded, data_dir)
    card = load_card(data_dir)
    runner.check_data(loaded, card, data_dir)
    dataset_classes = tuple(card["class_names"])
    model_classes = loaded.class_names or dataset_classes
    sequences = loaded.dataset_kind == "sequences"

    collected = runner.collect(
        loaded.models,
        runner.split_batches(loaded, data_dir, split, card, options),
        dataset_classes=dataset_classes,
        model_classes=model_classes,
        mistakes_per_model=options.gallery_size,
        sequences=sequences,
    )
    target = runner.output_dir(loaded, data_dir, split, out_dir)
    title = f"{loaded.name} on {Path(data_dir).name} / {split}"
    report = Report(title)
    result = {
        "run": loaded.name,
        "run_path": str(loaded.path),
        "dataset": str(data_dir),
        "split": split,
        "dataset_kind": loaded.dataset_kind,
        "class_names": list(model_classes),
        "num_examples": int(collected.labels.size),
        "excluded": collected.excluded,
        "options": options.to_dict(),
        "evaluated_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "models": {},
        "labels": None if card.get("generator") else (card.get("labels") or {}).get("path"),
    }
    _describe(report, result, card)
    figures = {}
    for name, probabilities in collected.probabilities.items():
        result["models"][name] = _classifier_section(
            report, collected, name, probabilities, model_classes, figures
        )
    mistakes = {
        name: metrics.most_confident_mistakes(collected.labels, p, options.gallery_size)
        for name, p in collected.probabilities.items()
    }
    for name, rows in mistakes.items():
        stamps = collected.mistake_stamps.get(name, {})
        _mistake_gallery(report, collected, name, rows, stamps, model_classes)
    for name, latents in collected.z_mean.items():
        result["models"][name] = _latent_section(
            report, collected, name, latents, model_classes, options, figures
        )
    _save_predictions(target / "predictions.npz", collected)
    for figure_name, png in figures.items():
        (target / f"{figure_name}.png").write_bytes(png)
    result["figures"] = sorted(f"{name}.png" for name in figures)
    result["metrics_path"] = str(write_metrics(result, target / "metrics.json"))
    result["report"] = str(report.write(target / "report.html"))
    result["confusion_png"] = {k: figures[f"confusion_{k}"] for k in collected.probabilities}
    result["arrays"] = {"labels": collected.labels, "probabilities": collected.probabilities}
    return result


def _describe(report: Report, result: dict, card: dict) -> None:
    report.paragraph(
        f"Run {result['run_path']} evaluated on {result['dataset']}, split "
        f"'{result['split']}': {result['num_examples']} labelled examples.",
        "meta",
    )
    if card.get("generator"):
        report.paragraph(f"Simulated data ({card['generator']}).", "meta")
    elif card.get("labels"):
        report.paragraph(
            f"Labels from {card['labels'].get('path')}. For the real ZTF sample these are "
            "heuristic catalogue cross-matches, not ground truth.",
            "note",
        )
    if result["excluded"]:
        excluded = ", ".join(f"{name}: {count}" for name, count in result["excluded"].items())
        report.paragraph(
            f"Examples of classes the model does not have were excluded ({excluded}).", "note"
        )


def _classifier_section(report, collected, name, probabilities, class_names, figures) -> dict:
    labels = collected.labels
    scores = metrics.classification_metrics(labels, probabilities, class_names)
    report.heading(f"Classifier '{name}'")
    report.table(
        ["accuracy", "macro-F1", "balanced accuracy", "examples"],
        [[scores["accuracy"], scores["macro_f1"], scores["macro_recall"], scores["num_examples"]]],
    )
    few = [name for name, row in scores["per_class"].items() if 0 < row["support"] < 10]
    if few:
        report.paragraph(
            f"Fewer than 10 examples of {', '.join(few)}: their per-class numbers are noisy.",
            "note",
        )
    header, rows = classification_table(scores)
    report.table(header, rows, caption="Per class, one vs rest; support = true examples.")
    figures[f"confusion_{name}"] = plots.figure_png(
        plots.plot_confusion_matrices(scores["confusion_matrix"], class_names)
    )
    report.image(
        figures[f"confusion_{name}"],
        f"confusion matrices of {name}",
        "Rows: true class; columns: predicted class.",
    )
    figures[f"roc_pr_{name}"] = plots.figure_png(
        plots.plot_roc_pr(labels, probabilities, class_names)
    )
    report.image(figures[f"roc_pr_{name}"], f"ROC and precision-recall curves of {name}")
    by_detections = collected.probabilities_by_detections.get(name)
    if by_detections is not None:
        curve = metrics.accuracy_by_detections(labels, by_detections, collected.num_detections)
        scores["accuracy_by_detections"] = curve
        report.heading("Accuracy against number of detections", 3)
        report.table(
            ["detections used", "accuracy", "objects"],
            [[n, row["accuracy"], row["count"]] for n, row in curve.items()],
            caption="Objects with at least n detections, classified from the first n.",
        )
        figures[f"accuracy_vs_detections_{name}"] = plots.figure_png(
            plots.plot_accuracy_vs_detections({name: curve})
        )
        report.image(figures[f"accuracy_vs_detections_{name}"], "accuracy vs detections")
    return {"role": "classifier", **scores}


def _mistake_gallery(report, collected, name, rows, stamps, class_names) -> None:
    shown = [row for row in rows if int(collected.candid[row]) in stamps]
    if not shown:
        return
    probabilities = collected.probabilities[name]
    captions = []
    for row in shown:
        predicted = int(probabilities[row].argmax())
        captions.append(
            f"true {class_names[collected.labels[row]]}\npredicted {class_names[predicted]}\n"
            f"p = {probabilities[row, predicted]:.2f}\n{collected.candid[row]}"
        )
    figure = plots.plot_stamp_gallery(
        np.stack([stamps[int(collected.candid[row])][0] for row in shown]),
        captions,
        masks=np.stack([stamps[int(collected.candid[row])][1] for row in shown]),
    )
    report.heading(f"Most confident mistakes of '{name}'", 3)
    report.image(
        plots.figure_png(figure),
        "most confident mistakes",
        "Raw stamps, each stretched between its 1st and 99th percentile.",
    )


def _latent_section(report, collected, name, latents, class_names, options, figures) -> dict:
    labels = collected.labels
    section = {
        "role": "autoencoder" if name in collected.reconstruction_error else "encoder",
        "latent_dim": int(latents.shape[1]),
    }
    report.heading(f"Latent space of '{name}' ({latents.shape[1]} dimensions)")
    errors = collected.reconstruction_error.get(name)
    if errors is not None:
        per_class = metrics.per_class_mean(errors, labels, class_names)
        section["reconstruction_error"] = {"mean": float(errors.mean()), "per_class": per_class}
        report.table(
            ["class", "mean squared error", "std", "examples"],
            [[c, v["mean"], v["std"], v["count"]] for c, v in per_class.items()],
            caption="Reconstruction error of the preprocessed crop, valid pixels only.",
        )
        examples = collected.examples[name]
        figures[f"reconstructions_{name}"] = plots.figure_png(
            plots.plot_reconstructions(
                examples["target"], examples["reconstruction"], examples["captions"]
            )
        )
        report.image(
            figures[f"reconstructions_{name}"],
            "reconstructions",
            "Input (preprocessed crop) and reconstruction, per channel.",
        )
    section["clustering"] = _clustering(latents, labels, len(class_names), options.seed)
    own = collected.clusters.get(name)
    if own is not None and section["clustering"]:
        from stampnet.evaluation import clustering

        section["clustering_own"] = clustering.clustering_scores(labels, own)
        report.table(list(section["clustering_own"]), [list(section["clustering_own"].values())],
                     caption="The model's own clusters (argmax of p(c | z)).")  # fmt: skip
    if section["clustering"]:
        report.table(
            list(section["clustering"]),
            [list(section["clustering"].values())],
            caption="k-means on the latent means, k = number of classes.",
        )
    if latents.shape[0] >= 4:
        points, used, parameters = metrics.umap_embedding(
            latents,
            seed=options.seed,
            n_neighbors=options.umap_neighbors,
            min_dist=options.umap_min_dist,
        )
        section["umap"] = parameters
        figures[f"umap_{name}"] = plots.figure_png(
            plots.plot_embedding(
                points, labels[used], class_names=class_names, title="coloured by class"
            )
        )
        report.image(figures[f"umap_{name}"], "UMAP by class", _umap_caption(parameters))
        if collected.num_detections is not None:
            figures[f"umap_detections_{name}"] = plots.figure_png(
                plots.plot_embedding(
                    points,
                    collected.num_detections[used],
                    title="coloured by detections",
                    colour_label="number of detections",
                )
            )
            report.image(figures[f"umap_detections_{name}"], "UMAP by number of detections")
    return section


def _umap_caption(parameters: dict) -> str:
    return "UMAP of the latent means: " + ", ".join(f"{k}={v}" for k, v in parameters.items())


def _clustering(latents, labels, num_classes, seed) -> dict:
    """Unsupervised accuracy, NMI and ARI of k-means clusters, and the active latent units."""
    from stampnet.evaluation import clustering

    if latents.shape[0] < max(num_classes, 2):
        return {}
    clusters = clustering.cluster_latents(latents, num_classes, method="kmeans", seed=seed)
    scores = clustering.clustering_scores(labels, clusters)
    scores["active_units"] = clustering.active_units(latents)["active_units"]
    return scores


def _save_predictions(path: Path, collected) -> None:
    """Everything the metrics are computed from, so that they can be recomputed without TF."""
    arrays = {"labels": collected.labels, "candid": collected.candid}
    arrays.update({f"probabilities/{k}": v for k, v in collected.probabilities.items()})
    arrays.update(
        {f"by_detections/{k}": v for k, v in collected.probabilities_by_detections.items()}
    )
    arrays.update({f"z_mean/{k}": v for k, v in collected.z_mean.items()})
    arrays.update({f"clusters/{k}": v for k, v in collected.clusters.items()})
    arrays.update(
        {f"reconstruction_error/{k}": v for k, v in collected.reconstruction_error.items()}
    )
    if collected.num_detections is not None:
        arrays["num_detections"] = collected.num_detections
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


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
