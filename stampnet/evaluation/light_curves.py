"""Reports of the light-curve history: the sequence VAE's reconstruction of stamps and light
curves against mean baselines, and a sequence classifier's accuracy by detections used.

Models hold models; these functions measure them (``benchmarks/lightcurve_builtin.py``,
``benchmarks/history_effect.py`` and the tests use them).
"""

from __future__ import annotations

import numpy as np

from stampnet.evaluation.runner import truncate_detections
from stampnet.models.lightcurve import light_curve_target


def light_curve_reconstruction_report(predict, batches) -> dict:
    """Masked MSE of ``predict(inputs) -> (B, L)`` on the scaled flux, against the mean baseline.

    The baseline predicts, for every row, the mean target over all weighted rows of ``batches``
    (a list of input dicts): the error a model that ignores its input cannot beat.
    """
    targets = []
    for inputs in batches:
        target, weight = (np.asarray(x) for x in light_curve_target(
            inputs["light_curve"], inputs["light_curve_mask"]))  # fmt: skip
        targets.append((target, weight, np.asarray(predict(inputs))))
    rows = sum(float(weight.sum()) for _, weight, _ in targets)
    if rows == 0:
        raise ValueError("light_curve_reconstruction_report: no light-curve row with a flux")
    mean = sum(float((target * weight).sum()) for target, weight, _ in targets) / rows
    mse = sum(float((np.square(t - p) * w).sum()) for t, w, p in targets) / rows
    baseline = sum(float((np.square(t - mean) * w).sum()) for t, w, _ in targets) / rows
    return {
        "light_curve_mse": mse,
        "light_curve_baseline_mse": baseline,
        "light_curve_mse_ratio": mse / max(baseline, 1e-12),
        "light_curve_rows": int(rows),
    }


def sequence_reconstruction_report(vae, dataset, max_batches: int | None = None) -> dict:
    """Masked per-pixel MSE and BCE of the VAE against the mean-stamp baseline.

    The baseline predicts, for every pixel and channel of the crop, its mean over the valid
    pixels of all real detections in ``dataset`` (a first pass): the loss a model that ignores
    its input cannot beat. ``dataset`` yields inputs or ``(inputs, ...)`` tuples.
    """
    batches = list(dataset.take(max_batches) if max_batches else dataset)
    if not batches:
        raise ValueError("sequence_reconstruction_report received an empty dataset")
    batches = [batch[0] if isinstance(batch, tuple) else batch for batch in batches]
    total = weight = 0.0
    for inputs in batches:
        target, mask = (np.asarray(x) for x in vae.target_and_mask(inputs))
        total = total + (target * mask).sum(axis=(0, 1))
        weight = weight + mask.sum(axis=(0, 1))
    mean_stamp = total / np.maximum(weight, 1.0)
    sums = {"mse": 0.0, "bce": 0.0, "baseline_mse": 0.0, "baseline_bce": 0.0}
    pixels = 0.0
    for inputs in batches:
        target, mask = (np.asarray(x) for x in vae.target_and_mask(inputs))
        reconstruction = np.asarray(vae(inputs, training=False)["reconstruction"])
        baseline = np.broadcast_to(mean_stamp, target.shape)
        for prefix, prediction in (("", reconstruction), ("baseline_", baseline)):
            sums[prefix + "mse"] += float((np.square(target - prediction) * mask).sum())
            clipped = np.clip(prediction, 1e-7, 1 - 1e-7)
            bce = -(target * np.log(clipped) + (1 - target) * np.log(1 - clipped))
            sums[prefix + "bce"] += float((bce * mask).sum())
        pixels += float(mask.sum())
    report = {key: value / max(pixels, 1.0) for key, value in sums.items()}
    report["mse_ratio"] = report["mse"] / max(report["baseline_mse"], 1e-12)
    report["valid_pixels"] = int(pixels)
    if vae.light_curve_decoder is not None:
        report.update(
            light_curve_reconstruction_report(
                lambda inputs: vae(inputs, training=False)["light_curve_reconstruction"], batches
            )
        )
    return report


def accuracy_by_num_detections(model, dataset, max_detections: int) -> list[dict]:
    """Accuracy when the model sees only the first n detections, n = 1..max_detections.

    Neira et al. 2024's comparison. ``dataset`` yields ``(inputs, label[, weight])``. Per n:
    ``accuracy`` over all objects (those with fewer detections use all they have),
    ``accuracy_with_n`` over objects with at least n detections, and their count.
    """
    correct = np.zeros(max_detections)
    correct_with_n = np.zeros(max_detections)
    count_with_n = np.zeros(max_detections)
    total = 0
    for batch in dataset:
        inputs, labels = batch[0], np.asarray(batch[1])
        keys = set(model.input) if isinstance(getattr(model, "input", None), dict) else set(inputs)
        inputs = {key: np.asarray(value) for key, value in inputs.items() if key in keys}
        available = np.asarray(inputs["detection_mask"]).sum(axis=1)
        total += len(labels)
        for n in range(1, max_detections + 1):
            predicted = np.argmax(model(truncate_detections(inputs, n), training=False), axis=-1)
            hit = predicted == labels
            correct[n - 1] += hit.sum()
            correct_with_n[n - 1] += hit[available >= n].sum()
            count_with_n[n - 1] += (available >= n).sum()
    if total == 0:
        raise ValueError("accuracy_by_num_detections received an empty dataset")
    return [
        {
            "num_detections": n,
            "accuracy": float(correct[n - 1] / total),
            "accuracy_with_n": float(correct_with_n[n - 1] / max(count_with_n[n - 1], 1)),
            "objects_with_n": int(count_with_n[n - 1]),
        }
        for n in range(1, max_detections + 1)
    ]
