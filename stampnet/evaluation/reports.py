"""The reports of an evaluation, and which apply to which kind of model.

A report is a function ``report(context, name) -> dict``: it adds its tables and figures to the
HTML report for model ``name`` of the run and returns the numbers that go into that model's
entry of ``metrics.json``. ``REPORTS`` lists the reports of each model kind, in the order they
appear; ``stampnet.evaluation.command`` only looks them up. A model's kind is its role (what it
returned for one batch, ``model_outputs.role_of``), prefixed ``sequence_`` when it reads sequences.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from stampnet.evaluation import clustering, metrics, plots
from stampnet.evaluation.light_curves import light_curve_reconstruction
from stampnet.evaluation.report import Report, classification_table
from stampnet.evaluation.runner import Collected


@dataclasses.dataclass
class ReportContext:
    """What every report reads: the collected arrays, the report it writes into, the options.

    Args:
        report: the HTML report being written.
        collected: ``runner.collect``'s arrays for the run.
        class_names: the model classes that ``collected.labels`` index.
        options: ``EvaluationOptions``.
        figures: figure name -> PNG bytes, written beside the report as ``<name>.png``.
        baseline_data: callable(model name) -> (train, test) arrays for ``latent_baselines``,
            or None when the evaluation did not ask for baselines.
    """

    report: Report
    collected: Collected
    class_names: tuple[str, ...]
    options: object
    figures: dict = dataclasses.field(default_factory=dict)
    baseline_data: Callable | None = None

    def figure(self, key: str, figure, alt: str, caption: str = "") -> None:
        self.figures[key] = plots.figure_png(figure)
        self.report.image(self.figures[key], alt, caption)


def classification(context: ReportContext, name: str) -> dict:
    """Accuracy, macro-F1, per-class table, confusion matrices, ROC/PR curves; for a binary
    task also ROC AUC and the false-positive rate at 95 % and 98 % true-positive rate."""
    report, labels = context.report, context.collected.labels
    probabilities = context.collected.probabilities[name]
    scores = metrics.classification_metrics(labels, probabilities, context.class_names)
    report.heading(f"Classifier '{name}'")
    report.table(
        ["accuracy", "macro-F1", "balanced accuracy", "examples"],
        [[scores["accuracy"], scores["macro_f1"], scores["macro_recall"], scores["num_examples"]]],
    )
    binary = scores.get("binary")
    if binary:
        rates = sorted(binary["fpr_at_tpr"])
        report.table(
            ["positive class", "ROC AUC", *(f"FPR at {float(r):.0%} TPR" for r in rates)],
            [[binary["positive_class"], binary["roc_auc"],
              *(binary["fpr_at_tpr"][r] for r in rates)]],
            caption="Binary task: false-positive rate where the threshold on the positive "
            "class's probability keeps that share of the positives.",
        )  # fmt: skip
    few = [name for name, row in scores["per_class"].items() if 0 < row["support"] < 10]
    if few:
        report.paragraph(
            f"Fewer than 10 examples of {', '.join(few)}: their per-class numbers are noisy.",
            "note",
        )
    header, rows = classification_table(scores)
    report.table(header, rows, caption="Per class, one vs rest; support = true examples.")
    context.figure(
        f"confusion_{name}",
        plots.plot_confusion_matrices(scores["confusion_matrix"], context.class_names),
        f"confusion matrices of {name}",
        "Rows: true class; columns: predicted class.",
    )
    context.figure(
        f"roc_pr_{name}",
        plots.plot_roc_pr(labels, probabilities, context.class_names),
        f"ROC and precision-recall curves of {name}",
    )
    return {"role": "classifier", **scores}


def accuracy_by_detections(context: ReportContext, name: str) -> dict:
    """Accuracy of a sequence classifier from each object's first n detections."""
    collected = context.collected
    curve = metrics.accuracy_by_detections(
        collected.labels, collected.probabilities_by_detections[name], collected.num_detections
    )
    context.report.heading("Accuracy against number of detections", 3)
    context.report.table(
        ["detections used", "accuracy", "objects"],
        [[n, row["accuracy"], row["count"]] for n, row in curve.items()],
        caption="Objects with at least n detections, classified from the first n.",
    )
    context.figure(
        f"accuracy_vs_detections_{name}",
        plots.plot_accuracy_vs_detections({name: curve}),
        "accuracy vs detections",
    )
    return {"accuracy_by_detections": curve}


def mistake_gallery(context: ReportContext, name: str) -> dict:
    """The raw stamps of the classifier's most confident mistakes."""
    collected, class_names = context.collected, context.class_names
    probabilities = collected.probabilities[name]
    rows = metrics.most_confident_mistakes(
        collected.labels, probabilities, context.options.gallery_size
    )
    stamps = collected.mistake_stamps.get(name, {})
    shown = [row for row in rows if int(collected.candid[row]) in stamps]
    if not shown:
        return {}
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
    context.report.heading(f"Most confident mistakes of '{name}'", 3)
    context.report.image(
        plots.figure_png(figure),
        "most confident mistakes",
        "Raw stamps, each stretched between its 1st and 99th percentile.",
    )
    return {}


def reconstruction(context: ReportContext, name: str) -> dict:
    """Reconstruction error per class and against the mean stamp, and example reconstructions."""
    collected, report = context.collected, context.report
    latents = collected.z_mean[name]
    report.heading(f"Latent space of '{name}' ({latents.shape[1]} dimensions)")
    errors = collected.reconstruction_error[name]
    per_class = metrics.per_class_mean(errors, collected.labels, context.class_names)
    baseline = collected.reconstruction_baseline[name]
    report.table(
        ["class", "mean squared error", "std", "examples"],
        [[c, v["mean"], v["std"], v["count"]] for c, v in per_class.items()],
        caption="Reconstruction error of the preprocessed crop, valid pixels only.",
    )
    report.table(
        ["", "MSE per pixel", "BCE per pixel"],
        [
            ["model", baseline["pixel_mse"], baseline["pixel_bce"]],
            ["mean stamp", baseline["mean_stamp_mse"], baseline["mean_stamp_bce"]],
        ],
        caption="Against the mean stamp of these examples (the loss of a model that ignores its "
        f"input); MSE ratio {baseline['mse_ratio_to_mean_stamp']:.3f}.",
    )
    examples = collected.examples[name]
    context.figure(
        f"reconstructions_{name}",
        plots.plot_reconstructions(
            examples["target"], examples["reconstruction"], examples["captions"]
        ),
        "reconstructions",
        "Input (preprocessed crop) and reconstruction, per channel.",
    )
    return {
        "role": "autoencoder",
        "reconstruction_error": {
            "mean": float(errors.mean()),
            "per_class": per_class,
            "mean_stamp": baseline,
        },
    }


def latent_space(context: ReportContext, name: str) -> dict:
    """Active units, k-means (and the model's own) clusters against the classes, UMAP."""
    collected, report, options = context.collected, context.report, context.options
    latents, labels, class_names = collected.z_mean[name], collected.labels, context.class_names
    section = {"latent_dim": int(latents.shape[1])}
    if name not in collected.reconstruction_error:
        section["role"] = "encoder"
        report.heading(f"Latent space of '{name}' ({latents.shape[1]} dimensions)")
    section["clustering"] = _clustering(latents, labels, len(class_names), options.seed)
    own = collected.clusters.get(name)
    if own is not None and section["clustering"]:
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
        caption = "UMAP of the latent means: " + ", ".join(
            f"{k}={v}" for k, v in parameters.items()
        )
        context.figure(
            f"umap_{name}",
            plots.plot_embedding(
                points, labels[used], class_names=class_names, title="coloured by class"
            ),
            "UMAP by class",
            caption,
        )
        if collected.num_detections is not None:
            context.figure(
                f"umap_detections_{name}",
                plots.plot_embedding(
                    points,
                    collected.num_detections[used],
                    title="coloured by detections",
                    colour_label="number of detections",
                ),
                "UMAP by number of detections",
            )
    return section


def latent_baselines(context: ReportContext, name: str) -> dict:
    """Gradient boosting on the latent means, the features and both (train split -> this split),
    when the evaluation asks for it (``--baselines``): what the latent space adds to features."""
    if context.baseline_data is None:
        return {}
    from stampnet.models.baselines import fit_baselines

    train, test = context.baseline_data(name)
    scores = fit_baselines(train, test, len(context.class_names))
    context.report.table(
        ["inputs", *next(iter(scores.values()))],
        [[inputs, *row.values()] for inputs, row in scores.items()],
        caption="Gradient boosting fit on the train split's labelled examples.",
    )
    return {"baselines": scores}


def _clustering(latents, labels, num_classes, seed) -> dict:
    """Unsupervised accuracy, NMI and ARI of k-means clusters, and the active latent units."""
    if latents.shape[0] < max(num_classes, 2):
        return {}
    clusters = clustering.cluster_latents(latents, num_classes, method="kmeans", seed=seed)
    scores = clustering.clustering_scores(labels, clusters)
    scores["active_units"] = clustering.active_units(latents)["active_units"]
    return scores


#: The reports of each model kind, in report order.
REPORTS = {
    "classifier": (classification, mistake_gallery),
    "sequence_classifier": (classification, accuracy_by_detections, mistake_gallery),
    "autoencoder": (reconstruction, latent_space, latent_baselines),
    "sequence_autoencoder": (reconstruction, light_curve_reconstruction, latent_space),
    "encoder": (latent_space, latent_baselines),
    "sequence_encoder": (latent_space,),
}


def model_kind(role: str, sequences: bool) -> str:
    """The key of ``REPORTS`` for a model of ``role`` reading sequences or single alerts."""
    return f"sequence_{role}" if sequences else role


def run_reports(context: ReportContext, name: str, kind: str) -> dict:
    """Runs the reports of ``kind`` for model ``name``; returns its merged metrics."""
    if kind not in REPORTS:
        raise ValueError(f"No reports for model kind {kind!r}; known kinds: {sorted(REPORTS)}")
    section = {}
    for report in REPORTS[kind]:
        section.update(report(context, name))
    return section
