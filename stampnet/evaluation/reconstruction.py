"""What an autoencoder is scored on: its reconstruction target, the error, the mean-stamp
baseline, and a few examples for the report."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from stampnet.evaluation.loading import layers_of


class MeanStampBaseline:
    """Pixel-pooled reconstruction loss of a model against the mean stamp of the same examples.

    The mean stamp predicts, for every pixel and channel of the crop, its mean over the valid
    pixels of all examples: the loss a model that ignores its input cannot beat (it is the
    split's own mean, so a slightly strict bar). Its squared error and binary cross-entropy need
    only per-pixel sums of ``mask``, ``mask * t`` and ``mask * t**2``, so one streaming pass
    gives both losses.
    """

    def __init__(self):
        self.count = self.total = self.squares = 0.0
        self.model_squared = self.model_cross_entropy = 0.0

    def add(self, target, reconstruction, mask) -> None:
        target, reconstruction = np.asarray(target, np.float64), np.asarray(reconstruction)
        mask = np.broadcast_to(np.asarray(mask, np.float64), target.shape)
        pooled = tuple(range(target.ndim - 3))  # examples (and detections): per-pixel sums
        self.count = self.count + mask.sum(axis=pooled)
        self.total = self.total + (mask * target).sum(axis=pooled)
        self.squares = self.squares + (mask * target**2).sum(axis=pooled)
        self.model_squared += float((mask * (target - reconstruction) ** 2).sum())
        self.model_cross_entropy += float((mask * _cross_entropy(target, reconstruction)).sum())

    def result(self) -> dict:
        count = np.asarray(self.count)
        pixels = float(count.sum())
        mean = np.clip(self.total / np.maximum(count, 1.0), 1e-7, 1 - 1e-7)
        squared = float((self.squares - self.total**2 / np.maximum(count, 1.0)).sum())
        cross_entropy = float(
            -(self.total * np.log(mean) + (count - self.total) * np.log(1 - mean)).sum()
        )
        scale = max(pixels, 1.0)
        scores = {
            "pixel_mse": self.model_squared / scale,
            "mean_stamp_mse": max(squared, 0.0) / scale,
            "pixel_bce": self.model_cross_entropy / scale,
            "mean_stamp_bce": cross_entropy / scale,
            "valid_pixels": int(pixels),
        }
        scores["mse_ratio_to_mean_stamp"] = scores["pixel_mse"] / max(
            scores["mean_stamp_mse"], 1e-12
        )
        return scores


def _cross_entropy(target, prediction) -> np.ndarray:
    prediction = np.clip(np.asarray(prediction, np.float64), 1e-7, 1 - 1e-7)
    return -(target * np.log(prediction) + (1 - target) * np.log(1 - prediction))


def masked_mse(target, reconstruction, mask) -> np.ndarray:
    """(N,) mean squared error of each example over its valid pixels."""
    axes = tuple(range(1, target.ndim))
    mask = np.broadcast_to(mask, target.shape)
    error = ((target - reconstruction) ** 2 * mask).sum(axis=axes)
    return error / np.maximum(mask.sum(axis=axes), 1.0)


def reconstruction_target(model, inputs: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """What an autoencoder reconstructs: its own preprocessing of the crop, and the crop's mask.

    A run saves the autoencoder as a functional view without ``target_and_mask``; the target is
    then rebuilt from the model's ``StampPreprocessing`` layer, so both use the same settings.
    """
    from stampnet.layers.preprocessing import StampPreprocessing, center_crop_bounds

    if hasattr(model, "target_and_mask"):
        return tuple(np.asarray(value) for value in model.target_and_mask(inputs))
    layer = next((item for item in layers_of(model) if isinstance(item, StampPreprocessing)), None)
    if layer is None:
        raise ValueError(f"Autoencoder {model.name!r} has no StampPreprocessing layer to rebuild "
                         "its reconstruction target from")  # fmt: skip
    stamps, stamp_mask = np.asarray(inputs["stamps"]), np.asarray(inputs["stamp_mask"])
    target = StampPreprocessing(layer.crop_size, layer.normalisation)(stamps, stamp_mask)
    start, stop = center_crop_bounds(layer.crop_size, stamps.shape[-2])
    return np.asarray(target), stamp_mask[..., start:stop, start:stop, :].astype(np.float32)


def keep_examples(store, labels, target, reconstruction, class_names, per_class):
    for index in range(len(labels)):
        name = class_names[labels[index]]
        rows = store.setdefault(name, [])
        if len(rows) < per_class:
            # A sequence autoencoder: show the first detection, which every object has.
            first = (0,) if target.ndim == 5 else ()
            rows.append((target[index][first], reconstruction[index][first]))


def finish_examples(store: dict) -> dict:
    captions, targets, outputs = [], [], []
    for name, rows in store.items():
        for target, reconstruction in rows:
            captions.append(name)
            targets.append(target)
            outputs.append(reconstruction)
    return {"captions": captions, "target": np.stack(targets), "reconstruction": np.stack(outputs)}
