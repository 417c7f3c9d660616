"""scikit-learn baselines on the latent space: what does the latent add to the features?

Gradient boosting (``HistGradientBoostingClassifier``, which takes NaN = missing features as they
come) on three inputs of the same split: latent + features, latent only, features only. Side by
side with the neural latent classifier they show whether the autoencoder learnt anything the
ALeRCE metadata features do not already carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn import metrics
from sklearn.ensemble import HistGradientBoostingClassifier

#: input name -> which arrays of ``collect_latents`` it concatenates.
BASELINE_INPUTS = {
    "latent+features": ("z_mean", "features"),
    "latent": ("z_mean",),
    "features": ("features",),
}


def classification_scores(labels, predictions, num_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro F1 of integer predictions."""
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    return {
        "accuracy": float(metrics.accuracy_score(labels, predictions)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(labels, predictions)),
        "macro_f1": float(
            metrics.f1_score(labels, predictions, labels=list(range(num_classes)), average="macro")
        ),
        "num_examples": int(len(labels)),
    }


def _labelled(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    keep = np.asarray(arrays["label"]) >= 0
    return {key: np.asarray(value)[keep] for key, value in arrays.items()}


def _design(arrays: Mapping[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    return np.concatenate([np.asarray(arrays[key], np.float64) for key in keys], axis=1)


def fit_baselines(
    train: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    num_classes: int,
    *,
    inputs: Sequence[str] = tuple(BASELINE_INPUTS),
    max_iter: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Fits gradient boosting per input set on the labelled train rows; scores the test rows.

    Args:
        train, test: arrays ``z_mean`` (N, D), ``features`` (N, F), ``label`` (N,) with -1 for
            unlabelled rows (dropped), as ``stampnet.evaluation.embed.collect_latents`` returns.
        num_classes: number of classes (label ids 0..K-1).
        inputs: names from ``BASELINE_INPUTS``.
        max_iter: boosting iterations.
        seed: random state of the boosting.

    Returns:
        input name -> ``classification_scores`` on the test split.
    """
    unknown = [name for name in inputs if name not in BASELINE_INPUTS]
    if unknown:
        raise ValueError(f"Unknown baseline inputs {unknown}; known: {list(BASELINE_INPUTS)}")
    train, test = _labelled(train), _labelled(test)
    if len(np.unique(train["label"])) < 2 or not len(test["label"]):
        raise ValueError(
            "baselines need labelled train examples of at least 2 classes and labelled test "
            f"examples; received train labels {np.unique(train['label']).tolist()} and "
            f"{len(test['label'])} test examples"
        )
    results = {}
    for name in inputs:
        keys = BASELINE_INPUTS[name]
        if any(np.asarray(train[key]).shape[1] == 0 for key in keys):
            continue  # e.g. features only, when the feature set is "none"
        model = HistGradientBoostingClassifier(
            max_iter=max_iter, class_weight="balanced", random_state=seed
        )
        model.fit(_design(train, keys), train["label"])
        predictions = model.predict(_design(test, keys))
        results[name] = classification_scores(test["label"], predictions, num_classes)
    return results
