"""Classification and reconstruction metrics computed from saved arrays.

Everything here takes plain numpy arrays (labels, probabilities, latents, number of detections),
so the metrics of a run can be recomputed from its saved predictions without TensorFlow. The
counting is scikit-learn's; what is ours is the conventions: labels are integer indices into
``class_names``; classes with no true example get ``nan`` for recall and AUC (not 0), so that a
small test split does not look worse than it is; binary tasks name their positive class
(``positive_class``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm


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


#: The true-positive rates at which binary tasks report the false-positive rate: a real/bogus
#: filter is chosen to keep 95 % or 98 % of real candidates (Cabrera-Vives et al. 2017 report
#: the false-positive rate at fixed recall).
TARGET_TRUE_POSITIVE_RATES = (0.95, 0.98)

#: Class names that mean "the positive class" of a binary task, case-insensitive.
POSITIVE_NAMES = ("real", "1", "true", "positive", "yes")


def positive_class(class_names: Sequence[str]) -> int:
    """The index of the positive class of a two-class task.

    The class named like "real", "1", "true", "positive" or "yes" (case-insensitive) when
    exactly one is; otherwise the second class, as scikit-learn takes the greater label (a
    Deep-HiTS database with labels 0/1, 1 = real, gives classes ``["0", "1"]`` or
    ``["bogus", "real"]``: the second either way).
    """
    if len(class_names) != 2:
        raise ValueError(f"A binary task has two classes, received {list(class_names)}")
    named = [i for i, name in enumerate(class_names) if str(name).lower() in POSITIVE_NAMES]
    return named[0] if len(named) == 1 else 1


def _one_vs_rest(positives, scores) -> tuple[float, float]:
    """ROC AUC and average precision, ``nan`` where undefined (no positive or no negative)."""
    if positives.all() or not positives.any():
        average_precision = float("nan") if not positives.any() else 1.0
        return float("nan"), average_precision
    return (
        float(skm.roc_auc_score(positives, scores)),
        float(skm.average_precision_score(positives, scores)),
    )


def false_positive_rate_at(positives, scores, true_positive_rate: float) -> tuple[float, float]:
    """The lowest false-positive rate, and its threshold, at which at least
    ``true_positive_rate`` of the positives score at or above the threshold."""
    fpr, tpr, thresholds = skm.roc_curve(positives, scores, drop_intermediate=False)
    reached = np.nonzero(tpr >= true_positive_rate - 1e-12)[0][0]
    return float(fpr[reached]), float(thresholds[reached])


def binary_metrics(labels, probabilities, class_names: Sequence[str]) -> dict:
    """ROC AUC and the false-positive rate at 95 % and 98 % true-positive rate of a binary task.

    The score is the probability of the positive class (``positive_class``). Returns
    ``{"positive_class", "roc_auc", "average_precision", "fpr_at_tpr": {"0.95": ..., "0.98":
    ...}, "threshold_at_tpr": {...}}``; values are ``nan`` when the split lacks one of the
    classes.
    """
    class_names = list(class_names)
    labels, probabilities = _check_labels(labels, probabilities, class_names)
    positive = positive_class(class_names)
    positives, scores = labels == positive, probabilities[:, positive]
    auc, average_precision = _one_vs_rest(positives, scores)
    result = {
        "positive_class": class_names[positive],
        "roc_auc": auc,
        "average_precision": average_precision,
        "fpr_at_tpr": {},
        "threshold_at_tpr": {},
    }
    for rate in TARGET_TRUE_POSITIVE_RATES:
        fpr, threshold = (
            false_positive_rate_at(positives, scores, rate)
            if np.isfinite(auc)
            else (float("nan"), float("nan"))
        )
        result["fpr_at_tpr"][f"{rate:.2f}"] = fpr
        result["threshold_at_tpr"][f"{rate:.2f}"] = threshold
    return result


def classification_metrics(labels, probabilities, class_names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1, confusion matrices, one-vs-rest AUCs.

    Computed with scikit-learn. Classes with no true example get ``nan`` recall, ROC AUC and
    average precision (not 0); macro-F1 averages the classes that occur in the labels or the
    predictions, balanced accuracy (``macro_recall``) those in the labels. A two-class task also
    gets ``binary`` (``binary_metrics``).

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
    every = list(range(len(class_names)))
    counts = skm.confusion_matrix(labels, predictions, labels=every)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predictions, labels=every, zero_division=0
    )
    recall = np.where(support > 0, recall, np.nan)
    present = np.unique(labels).tolist()
    per_class = {}
    for index, name in enumerate(class_names):
        auc, average_precision = _one_vs_rest(labels == index, probabilities[:, index])
        per_class[name] = {
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
            "roc_auc": auc,
            "average_precision": average_precision,
        }
    result = {
        "num_examples": int(labels.size),
        "accuracy": float(skm.accuracy_score(labels, predictions)),
        "macro_f1": float(skm.f1_score(labels, predictions, average="macro", zero_division=0)),
        # Balanced accuracy without scikit-learn's warning about predicted classes absent from
        # the labels (common on a small split): the macro recall of the classes present.
        "macro_recall": float(
            skm.recall_score(labels, predictions, labels=present, average="macro")
        ),
        "class_names": class_names,
        "confusion_matrix": counts.tolist(),
        "confusion_matrix_normalised": skm.confusion_matrix(
            labels, predictions, labels=every, normalize="true"
        ).tolist(),
        "per_class": per_class,
    }
    if len(class_names) == 2:
        result["binary"] = binary_metrics(labels, probabilities, class_names)
    return result


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
