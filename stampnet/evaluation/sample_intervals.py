"""How much a score on the labelled real alerts would move on another sample of real objects.

The real sample's alerts are not independent: an object gives several alerts (one SN of the
sample gives five, all called AGN by the same model), so resampling alerts understates the
spread. ``object_intervals`` resamples objects with all their alerts (a cluster bootstrap);
``paired_difference`` does the same for the difference between two sets of models evaluated on
the same alerts, e.g. the runs of two simulator versions: the runs' seeds give one spread, the
sample another, and a held-back set of real alerts differs from this one by the second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Scores these functions resample.
SCORES = ("accuracy", "macro_recall")
#: Draws resampled at once hold about this many (draw, alert) counts, so that memory stays flat
#: in the number of draws and bounded for large samples.
CHUNK_CELLS = 2_000_000


def _object_weights(object_ids, draws: int, seed: int):
    """Chunks of (draws, alerts): how many times each alert's object was drawn, the objects
    drawn with replacement."""
    _, index = np.unique(np.asarray(object_ids), return_inverse=True)
    objects = int(index.max()) + 1 if index.size else 0
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_CELLS // max(index.size, objects, 1))
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        picks = rng.integers(0, objects, (size, objects))
        counts = np.zeros((size, objects), np.int64)
        np.add.at(counts, (np.arange(size)[:, None], picks), 1)
        yield counts[:, index]


def _drawn_scores(labels, runs: list, object_ids, classes: int, draws: int, seed: int) -> list:
    """Per set of runs, its scores (the mean over its runs) over the same object draws:
    [{score: (draws,)}]."""
    chunks = [[] for _ in runs]
    for weights in _object_weights(object_ids, draws, seed):
        for part, predictions in zip(chunks, runs, strict=True):
            part.append(_scores(labels, predictions == labels, weights, classes))
    return [
        {name: np.concatenate([chunk[name].mean(axis=1) for chunk in part]) for name in SCORES}
        for part in chunks
    ]


def _scores(labels: np.ndarray, correct: np.ndarray, weights: np.ndarray, classes: int) -> dict:
    """Accuracy and macro recall (over the classes present) of each draw's weighted alerts:
    {score: (draws, runs)} for ``correct`` of (runs, alerts)."""
    hits = np.einsum("da,ra->dr", weights, correct.astype(np.float64))
    accuracy = hits / weights.sum(axis=1, keepdims=True)
    recalls, present = [], []
    for index in range(classes):
        in_class = weights * (labels == index)
        support = in_class.sum(axis=1)
        class_hits = np.einsum("da,ra->dr", in_class, correct.astype(np.float64))
        recalls.append(class_hits / np.maximum(support, 1)[:, None])
        present.append(support > 0)
    recalls, present = np.stack(recalls, axis=-1), np.stack(present, axis=-1)
    macro = (recalls * present[:, None, :]).sum(axis=-1) / present.sum(axis=-1)[:, None]
    return {"accuracy": accuracy, "macro_recall": macro}


def _as_runs(predictions) -> np.ndarray:
    predictions = np.asarray(predictions)
    return predictions[None, :] if predictions.ndim == 1 else predictions


def _tails(level: float) -> list[float]:
    return [100 * (1 - level) / 2, 100 * (1 + level) / 2]


def run_scores(labels, predictions, num_classes: int) -> dict[str, np.ndarray]:
    """Accuracy and macro recall (over the classes present) of each run on the whole sample:
    {score: (runs,)} for ``predictions`` of (alerts,) or (runs, alerts)."""
    labels = np.asarray(labels)
    predictions = _as_runs(predictions)
    whole = np.ones((1, len(labels)), np.int64)
    scores = _scores(labels, predictions == labels, whole, num_classes)
    return {name: values[0] for name, values in scores.items()}


def _check(labels, predictions: np.ndarray, object_ids) -> None:
    if not len(labels) == predictions.shape[1] == len(object_ids):
        raise ValueError(
            f"{predictions.shape[1]} predictions per run for {len(labels)} labels and "
            f"{len(object_ids)} object ids: they must be of the same alerts"
        )


def object_intervals(
    labels,
    predictions,
    object_ids,
    num_classes: int,
    *,
    draws: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile intervals of accuracy and macro recall over resamplings of the sample's objects.

    Args:
        labels: (alerts,) true class index.
        predictions: (alerts,) predicted class index, or (runs, alerts): the score is then the
            mean over the runs (e.g. seeds) in every draw.
        object_ids: (alerts,) the object of each alert; its alerts are drawn together.
        num_classes: classes of the label index.
    """
    labels = np.asarray(labels)
    predictions = _as_runs(predictions)
    _check(labels, predictions, object_ids)
    (scores,) = _drawn_scores(labels, [predictions], object_ids, num_classes, draws, seed)
    return {name: np.percentile(scores[name], _tails(level)).tolist() for name in SCORES}


def paired_difference(
    labels,
    predictions_a,
    predictions_b,
    object_ids,
    num_classes: int,
    *,
    draws: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict]:
    """Score of A minus score of B on the same alerts, with its interval over object resamplings.

    ``predictions_a`` and ``predictions_b`` are (alerts,) or (runs, alerts), A's and B's runs
    averaged separately (they need not be as many). Both sets are scored on the same drawn
    objects in each draw, so what the two share (hard objects, easy ones) cancels.

    Returns:
        per score: ``difference`` (on the sample itself), ``interval`` (at ``level``) and
        ``share_above_zero`` (of the draws).
    """
    labels = np.asarray(labels)
    runs_a, runs_b = _as_runs(predictions_a), _as_runs(predictions_b)
    _check(labels, runs_a, object_ids)
    _check(labels, runs_b, object_ids)
    drawn_a, drawn_b = _drawn_scores(labels, [runs_a, runs_b], object_ids, num_classes, draws, seed)
    observed_a = run_scores(labels, runs_a, num_classes)
    observed_b = run_scores(labels, runs_b, num_classes)
    result = {}
    for name in SCORES:
        differences = drawn_a[name] - drawn_b[name]
        result[name] = {
            "difference": float(observed_a[name].mean() - observed_b[name].mean()),
            "interval": np.percentile(differences, _tails(level)).tolist(),
            "share_above_zero": float(np.mean(differences > 0)),
        }
    return result


def interval_text(name: str, value: float, interval: Sequence[float]) -> str:
    return f"{name} {value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"
