"""Classification and reconstruction metrics computed from saved arrays.

Everything here takes plain numpy arrays (labels, probabilities, latents, number of detections),
so the metrics of a run can be recomputed from its saved predictions without TensorFlow, and the
tests can check them against scikit-learn computed independently. Labels are integer indices into
``class_names``; classes with no true example get ``nan`` for recall and AUC (not 0), so that a
small test split does not look worse than it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np


def _check_labels(labels, probabilities, class_names) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(class_names):
        raise ValueError(
            f"probabilities must have shape (N, {len(class_names)}) for classes "
            f"{list(class_names)}, received shape {probabilities.shape}"
        )
    if probabilities.shape[0] != labels.shape[0]:
        raise ValueError(
            f"labels and probabilities disagree on N: received {labels.shape[0]} labels and "
            f"{probabilities.shape[0]} rows of probabilities"
        )
    bad = (labels < 0) | (labels >= len(class_names))
    if bad.any():
        raise ValueError(
            f"labels must be indices in [0, {len(class_names)}), "
            f"received {sorted(set(labels[bad].tolist()))}"
        )
    return labels, probabilities


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    flat = labels * num_classes + predictions
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def row_normalise(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total (recall on the diagonal); empty rows stay 0."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, np.float64), where=totals > 0)


def binary_roc(scores, positives) -> tuple[np.ndarray, np.ndarray, float]:
    """False/true positive rates over all thresholds, and the area (trapezoids, ties grouped)."""
    scores = np.asarray(scores, np.float64)
    positives = np.asarray(positives, bool)
    num_pos, num_neg = positives.sum(), (~positives).sum()
    if num_pos == 0 or num_neg == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, positives = scores[order], positives[order]
    # Only the last index of each run of tied scores is a threshold: ties move together.
    last = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    true_pos = np.cumsum(positives)[last]
    false_pos = (last + 1) - true_pos
    tpr = np.r_[0.0, true_pos / num_pos]
    fpr = np.r_[0.0, false_pos / num_neg]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def binary_precision_recall(scores, positives) -> tuple[np.ndarray, np.ndarray, float]:
    """Precision and recall over thresholds, and average precision (step-wise, as scikit-learn)."""
    scores = np.asarray(scores, np.float64)
    positives = np.asarray(positives, bool)
    num_pos = positives.sum()
    if num_pos == 0:
        return np.array([1.0, 0.0]), np.array([0.0, 1.0]), float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, positives = scores[order], positives[order]
    last = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    true_pos = np.cumsum(positives)[last]
    precision = true_pos / (last + 1)
    recall = true_pos / num_pos
    average_precision = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return np.r_[1.0, precision], np.r_[0.0, recall], average_precision


def classification_metrics(labels, probabilities, class_names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1, confusion matrices, one-vs-rest AUCs.

    Args:
        labels: (N,) true class indices into ``class_names``.
        probabilities: (N, C) predicted class probabilities.
        class_names: the C class names, in probability-column order.

    Returns:
        A JSON-ready dict; ``per_class`` maps each class name to its precision, recall, f1,
        support, roc_auc and average_precision.
    """
    class_names = list(class_names)
    labels, probabilities = _check_labels(labels, probabilities, class_names)
    predictions = probabilities.argmax(axis=1)
    counts = confusion_matrix(labels, predictions, len(class_names))
    true_pos = np.diag(counts).astype(np.float64)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, true_pos / predicted, 0.0)
        recall = np.where(support > 0, true_pos / support, np.nan)
        f1 = np.where(
            precision + np.nan_to_num(recall) > 0,
            2 * precision * recall / (precision + recall),
            0.0,
        )
    per_class = {}
    for index, name in enumerate(class_names):
        positives = labels == index
        _, _, auc = binary_roc(probabilities[:, index], positives)
        _, _, average_precision = binary_precision_recall(probabilities[:, index], positives)
        per_class[name] = {
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
            "roc_auc": auc,
            "average_precision": average_precision,
        }
    present = support > 0
    # Macro-F1 over the classes that occur in the labels or the predictions (scikit-learn's rule);
    # macro recall (balanced accuracy) over the classes that occur in the labels.
    scored = present | (predicted > 0)
    return {
        "num_examples": int(labels.size),
        "accuracy": float(true_pos.sum() / max(labels.size, 1)),
        "macro_f1": float(np.mean(np.nan_to_num(f1[scored]))) if scored.any() else float("nan"),
        "macro_recall": float(np.mean(recall[present])) if present.any() else float("nan"),
        "class_names": class_names,
        "confusion_matrix": counts.tolist(),
        "confusion_matrix_normalised": row_normalise(counts).tolist(),
        "per_class": per_class,
    }


def most_confident_mistakes(labels, probabilities, count: int = 8) -> np.ndarray:
    """Indices of misclassified examples, highest predicted probability first."""
    labels = np.asarray(labels, np.int64)
    probabilities = np.asarray(probabilities, np.float64)
    predictions = probabilities.argmax(axis=1)
    wrong = np.nonzero(predictions != labels)[0]
    confidence = probabilities[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="mergesort")][:count]


def accuracy_by_detections(labels, predictions, num_detections) -> dict[int, dict]:
    """Accuracy per number of detections used: {n: {"accuracy", "count"}}.

    ``predictions`` may be (N,) for one prediction per object, each made with ``num_detections[i]``
    detections, or (N, T) for the prediction of every object with its first 1..T detections, where
    column t counts only for objects that have at least t+1 detections.
    """
    labels = np.asarray(labels, np.int64)
    predictions = np.asarray(predictions, np.int64)
    num_detections = np.asarray(num_detections, np.int64)
    result = {}
    if predictions.ndim == 1:
        for n in np.unique(num_detections):
            chosen = num_detections == n
            correct = predictions[chosen] == labels[chosen]
            result[int(n)] = {"accuracy": float(correct.mean()), "count": int(chosen.sum())}
        return result
    for column in range(predictions.shape[1]):
        chosen = num_detections >= column + 1
        if chosen.any():
            correct = predictions[chosen, column] == labels[chosen]
            result[column + 1] = {"accuracy": float(correct.mean()), "count": int(chosen.sum())}
    return result


def reconstruction_errors(inputs, reconstructions, mask=None) -> np.ndarray:
    """Mean squared error per example over valid pixels (mask 1) of (N, ..., C) arrays."""
    inputs = np.asarray(inputs, np.float64)
    reconstructions = np.asarray(reconstructions, np.float64)
    if inputs.shape != reconstructions.shape:
        raise ValueError(
            f"inputs and reconstructions must have the same shape, received {inputs.shape} and "
            f"{reconstructions.shape}"
        )
    squared = (inputs - reconstructions) ** 2
    weights = np.ones_like(squared) if mask is None else np.asarray(mask, np.float64)
    axes = tuple(range(1, squared.ndim))
    total = np.maximum(weights.sum(axis=axes), 1.0)
    return (squared * weights).sum(axis=axes) / total


def per_class_mean(values, labels, class_names: Sequence[str]) -> dict[str, dict]:
    """Mean, std and count of ``values`` per class (e.g. reconstruction error)."""
    values = np.asarray(values, np.float64)
    labels = np.asarray(labels, np.int64)
    result = {}
    for index, name in enumerate(class_names):
        chosen = values[labels == index]
        result[name] = {
            "mean": float(chosen.mean()) if chosen.size else float("nan"),
            "std": float(chosen.std()) if chosen.size else float("nan"),
            "count": int(chosen.size),
        }
    return result


def umap_embedding(
    latents,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    max_points: int = 5000,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """2-D UMAP of ``latents`` (N, D), seeded; returns (points, indices used, parameters).

    At most ``max_points`` examples (a seeded random subset) are embedded: UMAP's cost grows
    faster than linearly and a scatter of more points shows nothing more. ``n_neighbors`` is
    lowered for tiny splits, where UMAP needs it below N. The parameters returned are the ones
    used, for the report and metrics.json.
    """
    import umap

    latents = np.asarray(latents, np.float32)
    if latents.ndim != 2 or latents.shape[0] < 4:
        raise ValueError(f"UMAP needs latents of shape (N >= 4, D), received {latents.shape}")
    rng = np.random.default_rng(seed)
    indices = np.arange(latents.shape[0])
    if indices.size > max_points:
        indices = np.sort(rng.choice(indices, max_points, replace=False))
    neighbours = int(min(n_neighbors, indices.size - 1))
    reducer = umap.UMAP(
        n_components=2, n_neighbors=neighbours, min_dist=min_dist, random_state=seed,
        init="spectral" if indices.size > neighbours + 2 else "random",
    )  # fmt: skip
    with warnings.catch_warnings():
        # Seeding makes UMAP single-threaded, which it announces on every call; that is the
        # price of a reproducible figure, not news.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        points = reducer.fit_transform(latents[indices])
    parameters = {
        "n_neighbors": neighbours,
        "min_dist": float(min_dist),
        "metric": "euclidean",
        "random_state": int(seed),
        "n_points": int(indices.size),
        "umap_version": umap.__version__,
    }
    return np.asarray(points), indices, parameters
