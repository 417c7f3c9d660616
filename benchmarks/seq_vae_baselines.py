"""How low can the sequence VAE's reconstruction MSE go? Linear codes of the same crops.

The main job reports the seq_vae's test MSE per valid pixel against the mean stamp's
(``MeanStampBaseline``: the preprocessed 21x21 crops of every real detection). This fits PCA on
the train split's crops and scores the test split the same way: per detection (k numbers a
stamp) and per object (k numbers for all its detections, as the VAE's z), and estimates the
pixel noise, which no code can rebuild. No training; about a minute of CPU.

    python benchmarks/seq_vae_baselines.py [--data tfrecords/builtin] [--steps 5]
"""

from __future__ import annotations

import argparse

import numpy as np


def crops(data_dir, split: str, steps: int):
    """(N, T, 21, 21, C) preprocessed crops and their masks (valid pixel AND real detection)."""
    from stampnet.data.pipeline import sequence_dataset
    from stampnet.layers.preprocessing import StampPreprocessing, center_crop_bounds

    preprocessing = StampPreprocessing(21, "minmax")
    targets, masks = [], []
    dataset = sequence_dataset(data_dir, split, batch_size=64, max_detections=steps,
                               labelled_only=False, shuffle=False)  # fmt: skip
    for inputs, _ in dataset.as_numpy_iterator():
        start, stop = center_crop_bounds(21, inputs["stamp_mask"].shape[-2])
        mask = inputs["stamp_mask"][..., start:stop, start:stop, :].astype(np.float32)
        masks.append(mask * inputs["detection_mask"][:, :, None, None, None])
        targets.append(np.asarray(preprocessing(inputs["stamps"], inputs["stamp_mask"])))
    return np.concatenate(targets), np.concatenate(masks)


def masked_mse(prediction, target, mask) -> float:
    return float((np.square(target - prediction) * mask).sum() / mask.sum())


def pca_ratios(train, test, test_mask, dims, baseline) -> dict[int, float]:
    """MSE ratio to ``baseline`` of the rank-k PCA reconstruction (fit on train) of test rows."""
    mean = train.mean(axis=0)
    components = np.linalg.svd(train - mean, full_matrices=False)[2]
    ratios = {}
    for k in dims:
        basis = components[:k]
        rebuilt = (test - mean) @ basis.T @ basis + mean
        ratios[k] = masked_mse(rebuilt, test, test_mask) / baseline
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="built dataset (default: the built-in)")
    parser.add_argument("--steps", type=int, default=5, help="detections per object")
    args = parser.parse_args()

    from stampnet.simulation.builtin import ensure_builtin_dataset

    data_dir = args.data or ensure_builtin_dataset()
    train, train_mask = crops(data_dir, "train", args.steps)
    test, test_mask = crops(data_dir, "test", args.steps)
    # The mean stamp of the test split itself, as MeanStampBaseline.
    mean_stamp = (test * test_mask).sum((0, 1)) / np.maximum(test_mask.sum((0, 1)), 1.0)
    baseline = masked_mse(mean_stamp, test, test_mask)
    print(f"{data_dir}: {len(train)} train, {len(test)} test objects; "
          f"mean-stamp MSE {baseline:.5f}")  # fmt: skip
    real_train = train_mask.max(axis=(2, 3, 4)) > 0
    real_test = test_mask.max(axis=(2, 3, 4)) > 0
    stamps = pca_ratios(
        train[real_train].reshape(real_train.sum(), -1),
        test[real_test].reshape(real_test.sum(), -1),
        test_mask[real_test].reshape(real_test.sum(), -1),
        (1, 4, 16, 64),
        baseline,
    )
    print("PCA per detection, MSE ratio to the mean stamp:",
          ", ".join(f"k={k}: {v:.3f}" for k, v in stamps.items()))  # fmt: skip
    objects = pca_ratios(
        (train * train_mask).reshape(len(train), -1),
        (test * test_mask).reshape(len(test), -1),
        test_mask.reshape(len(test), -1),
        (4, 16, 64),
        baseline,
    )
    print("PCA per object (one code for all its detections):",
          ", ".join(f"k={k}: {v:.3f}" for k, v in objects.items()))  # fmt: skip
    # Pixel noise from adjacent pixels of the crops' outer rows, where the source is faint.
    edge = test[:, :, :4][real_test]
    noise = float(np.var(np.diff(edge, axis=-2)) / 2)
    print(f"pixel noise variance ~{noise:.5f}: {noise / baseline:.3f} x the mean-stamp MSE")


if __name__ == "__main__":
    main()
