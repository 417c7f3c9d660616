"""Figures of an evaluation, as standalone matplotlib ``Figure`` objects.

Every function takes plain arrays and returns a ``matplotlib.figure.Figure`` built without
pyplot: no backend is chosen and no global figure registry fills up, so the same code serves
the command line (no display), tests and notebooks (``IPython.display.Image(figure_png(f))``).
``figure_png`` turns a figure into PNG bytes for the report.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from sklearn import metrics as skm

from stampnet.constants import BANDS, CHANNELS
from stampnet.data.history import KIND_NAMES

#: Colours per class index: tab10 is distinguishable for the five ALeRCE classes and "other".
CLASS_COLOURS = matplotlib.colormaps["tab10"].colors


def figure_png(figure: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of ``figure``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def display_scale(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """One channel stretched to [0, 1] between its 1st and 99th percentiles of valid pixels.

    Raw ZTF stamps span several decades (a bright host next to a faint transient); a percentile
    stretch shows both, where min-max would show one bright pixel on black.
    """
    image = np.asarray(image, np.float64)
    valid = np.isfinite(image) if mask is None else (np.asarray(mask) > 0) & np.isfinite(image)
    if not valid.any():
        return np.zeros(image.shape)
    low, high = np.percentile(image[valid], [1.0, 99.0])
    if high <= low:
        return np.where(valid, 0.5, 0.0)
    return np.where(valid, np.clip((image - low) / (high - low), 0.0, 1.0), 0.0)


def plot_confusion_matrices(counts, class_names: Sequence[str], title: str = "") -> Figure:
    """Counts and row-normalised confusion matrices side by side (rows: true class)."""
    counts = np.asarray(counts)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = 1.0 + 0.75 * len(class_names)
    figure = Figure(figsize=(2 * size + 1.5, size))
    axes = figure.subplots(1, 2)
    for axis, values, subtitle, text in (
        (axes[0], counts, "counts", lambda i, j: f"{counts[i, j]:d}"),
        (
            axes[1],
            normalised,
            "row-normalised (recall on diagonal)",
            lambda i, j: f"{normalised[i, j]:.2f}",
        ),
    ):
        scale = values.max() if values.max() > 0 else 1.0
        axis.imshow(values, cmap="Blues", vmin=0, vmax=scale)
        for i in range(len(class_names)):
            for j in range(len(class_names)):
                colour = "white" if values[i, j] > 0.6 * scale else "black"
                axis.text(j, i, text(i, j), ha="center", va="center", color=colour, fontsize=9)
        axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
        axis.set_yticks(range(len(class_names)), class_names)
        axis.set_xlabel("predicted class")
        axis.set_ylabel("true class")
        axis.set_title(subtitle, fontsize=10)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_roc_pr(labels, probabilities, class_names: Sequence[str]) -> Figure:
    """One-vs-rest ROC and precision-recall curves, one line per class present in ``labels``."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    figure = Figure(figsize=(10, 4.2))
    roc_axis, pr_axis = figure.subplots(1, 2)
    for index, name in enumerate(class_names):
        positives = labels == index
        if not positives.any() or positives.all():
            continue
        colour = CLASS_COLOURS[index % len(CLASS_COLOURS)]
        scores = probabilities[:, index]
        fpr, tpr, _ = skm.roc_curve(positives, scores)
        auc = skm.auc(fpr, tpr)
        roc_axis.plot(fpr, tpr, color=colour, label=f"{name} (AUC {auc:.3f})")
        precision, recall, _ = skm.precision_recall_curve(positives, scores)
        average = skm.average_precision_score(positives, scores)
        pr_axis.step(
            recall, precision, where="post", color=colour, label=f"{name} (AP {average:.3f})"
        )
    roc_axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    roc_axis.set(
        xlabel="false positive rate", ylabel="true positive rate", title="ROC, one vs rest"
    )
    pr_axis.set(xlabel="recall", ylabel="precision", title="precision-recall, one vs rest")
    for axis in (roc_axis, pr_axis):
        axis.set_xlim(-0.02, 1.02)
        axis.set_ylim(-0.02, 1.02)
        axis.legend(fontsize=8, loc="lower right" if axis is roc_axis else "lower left")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_accuracy_vs_detections(curves: Mapping[str, Mapping[int, Mapping]]) -> Figure:
    """Accuracy against number of detections used; ``curves[name][n] = {"accuracy", "count"}``."""
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    for name, curve in curves.items():
        steps = sorted(int(n) for n in curve)
        accuracy = [curve[n]["accuracy"] for n in steps]
        axis.plot(steps, accuracy, marker="o", label=name)
        for n, value in zip(steps, accuracy, strict=True):
            axis.annotate(f"n={curve[n]['count']}", (n, value), fontsize=7, alpha=0.7,
                          textcoords="offset points", xytext=(0, 6), ha="center")  # fmt: skip
    axis.set(xlabel="number of detections used", ylabel="accuracy", ylim=(0, 1.05))
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_stamp_gallery(stamps, captions: Sequence[str], masks=None, title: str = "") -> Figure:
    """Rows of alerts, columns science / template / difference, each channel stretched alone.

    The caption of a row sits in a text column at its left, so the stamps stay square and close
    together however long the captions are.
    """
    stamps = np.asarray(stamps)
    rows = max(len(stamps), 1)
    figure = Figure(figsize=(8.0, 1.9 * rows + 0.3))
    axes = figure.subplots(
        rows, 4, squeeze=False,
        gridspec_kw={"width_ratios": [1.1, 1, 1, 1], "wspace": 0.04, "hspace": 0.08},
    )  # fmt: skip
    for row in range(rows):
        axes[row, 0].set_axis_off()
        if row < len(stamps):
            axes[row, 0].text(0.95, 0.5, captions[row], ha="right", va="center", fontsize=8,
                              transform=axes[row, 0].transAxes)  # fmt: skip
        for column, channel in enumerate(CHANNELS):
            axis = axes[row, column + 1]
            axis.set_xticks([])
            axis.set_yticks([])
            if row >= len(stamps):
                axis.set_axis_off()
                continue
            mask = None if masks is None else np.asarray(masks[row])[..., column]
            axis.imshow(display_scale(stamps[row, ..., column], mask), cmap="gray", vmin=0, vmax=1)
            if row == 0:
                axis.set_title(channel, fontsize=10)
    if title:
        figure.suptitle(title)
    return figure


def plot_reconstructions(inputs, reconstructions, captions: Sequence[str]) -> Figure:
    """Input and reconstruction per channel: columns science in/out, template in/out, ...

    Both images of a pair share one colour scale (the input's range), so a faint reconstruction
    looks faint instead of being stretched to look right.
    """
    inputs = np.asarray(inputs, np.float64)
    reconstructions = np.asarray(reconstructions, np.float64)
    channels = inputs.shape[-1]
    names = CHANNELS if channels == len(CHANNELS) else [f"ch{c}" for c in range(channels)]
    rows = len(inputs)
    # Pairs sit close together and channels a little apart, so the eye reads input -> output.
    figure = Figure(figsize=(1.35 * 2 * channels + 0.8, 1.4 * rows + 0.5))
    axes = figure.subplots(
        rows, 2 * channels, squeeze=False,
        gridspec_kw={"wspace": 0.05, "hspace": 0.08},
    )  # fmt: skip
    for row in range(rows):
        for channel in range(channels):
            image = inputs[row, ..., channel]
            low, high = float(np.min(image)), float(np.max(image))
            high = high if high > low else low + 1.0
            for offset, (array, kind) in enumerate(
                ((inputs, "input"), (reconstructions, "output"))
            ):
                axis = axes[row, 2 * channel + offset]
                axis.imshow(array[row, ..., channel], cmap="gray", vmin=low, vmax=high)
                axis.set_xticks([])
                axis.set_yticks([])
                if row == 0:
                    axis.set_title(f"{names[channel]}\n{kind}", fontsize=8)
        axes[row, 0].set_ylabel(captions[row], fontsize=7, rotation=0, ha="right", va="center")
    figure.subplots_adjust(left=0.1, right=0.99, top=0.93, bottom=0.01)
    return figure


def plot_embedding(points, values, *, class_names: Sequence[str] | None = None,
                   title: str = "", colour_label: str = "") -> Figure:  # fmt: skip
    """2-D scatter of an embedding, coloured by class (``class_names``) or by a number.

    Args:
        points: (N, 2) embedding (UMAP of the latent means).
        values: (N,) class indices when ``class_names`` is given, else numbers (e.g. number of
            detections) shown with a colour bar; class -1 is drawn grey as "unlabelled".
    """
    points = np.asarray(points)
    values = np.asarray(values)
    figure = Figure(figsize=(6.2, 5))
    axis = figure.subplots()
    if class_names is not None:
        order = [(-1, "unlabelled")] + list(enumerate(class_names))
        for index, name in order:
            chosen = values == index
            if not chosen.any():
                continue
            colour = "lightgrey" if index < 0 else CLASS_COLOURS[index % len(CLASS_COLOURS)]
            axis.scatter(points[chosen, 0], points[chosen, 1], s=8, color=colour, alpha=0.8,
                         label=f"{name} ({chosen.sum()})", linewidths=0)  # fmt: skip
        axis.legend(fontsize=8, markerscale=2, loc="best")
    else:
        scatter = axis.scatter(points[:, 0], points[:, 1], c=values, s=8, cmap="viridis",
                               linewidths=0)  # fmt: skip
        figure.colorbar(scatter, ax=axis, label=colour_label)
    axis.set(xlabel="UMAP 1", ylabel="UMAP 2", title=title)
    axis.set_xticks([])
    axis.set_yticks([])
    figure.tight_layout()
    return figure


def plot_light_curves(examples: Mapping[str, Sequence[Mapping]]) -> Figure:
    """One panel per light curve (class name -> light curves with ``days``, ``fid``, ``kind``,
    ``target`` and ``prediction`` per row, as ``light_curves.LightCurveBaseline`` keeps them):
    bands coloured, detections, upper limits and forced photometry marked apart."""
    curves = [(name, curve) for name, kept in examples.items() for curve in kept]
    columns = min(len(curves), 3)
    rows = -(-len(curves) // columns)
    figure = Figure(figsize=(3.4 * columns, 2.6 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    colours = {1: "tab:green", 2: "tab:red", 3: "tab:brown"}
    markers = ("o", "v", "s")  # detection, upper limit, forced
    for axis, (name, curve) in zip(axes, curves, strict=False):
        for fid in np.unique(curve["fid"]):
            for kind in np.unique(curve["kind"]):
                chosen = (curve["fid"] == fid) & (curve["kind"] == kind)
                if not chosen.any():
                    continue
                colour = colours.get(int(fid), "grey")
                label = f"{BANDS.get(int(fid), fid)} {KIND_NAMES[int(kind)]}"
                axis.scatter(curve["days"][chosen], curve["target"][chosen], s=14, color=colour,
                             marker=markers[int(kind)], label=label)  # fmt: skip
                axis.scatter(curve["days"][chosen], curve["prediction"][chosen], s=22,
                             color=colour, marker="x", linewidths=0.8)  # fmt: skip
        axis.set(title=name, xlabel="days before the last detection", ylabel="scaled flux")
        axis.legend(fontsize=6)
    for axis in axes[len(curves) :]:
        axis.set_axis_off()
    return figure
