"""GPU check of on-device augmentation and stamp-classifier training (Keras 3, any backend).

stampnet's layers and the stamp classifier use only ``keras.ops``, so they run on whatever
accelerator the Keras backend sees. This script checks, on the current device:
1. ``StampAugmentation`` runs batched on the accelerator (output placed there), is the identity at
   inference, and keeps masks consistent; its throughput is printed.
2. The stamp classifier trains (loss falls) with augmentation in front of it, on the accelerator.
3. The trained classifier stays exactly rotation invariant there (max |delta p| printed).

Run: ``KERAS_BACKEND=jax python benchmarks/gpu_check.py`` (or tensorflow). It prints figures and
exits non-zero if a check fails. It uses random stamps: this is a device check, not a model check.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import keras
import numpy as np

from stampnet.constants import ALERCE_CLASSES, STAMP_SHAPE
from stampnet.features import ALERCE23, FeatureStats
from stampnet.layers.augmentation import StampAugmentation
from stampnet.losses.classification import EntropyRegularisedCrossentropy
from stampnet.models.stamp_classifier import build_stamp_classifier


def device_of(tensor) -> str:
    if hasattr(tensor, "devices"):  # jax.Array
        return ",".join(str(device) for device in tensor.devices())
    return str(getattr(tensor, "device", "unknown"))


def random_batch(rng, batch_size):
    stamps = rng.normal(100.0, 10.0, (batch_size, *STAMP_SHAPE)).astype("float32")
    mask = (rng.random((batch_size, *STAMP_SHAPE)) > 0.01).astype("float32")
    labels = rng.integers(0, len(ALERCE_CLASSES), batch_size)
    # A learnable signal: a bright centred source whose size depends on the class.
    yy, xx = np.mgrid[:63, :63] - 31
    for index, label in enumerate(labels):
        width = 1.0 + label
        stamps[index, :, :, 2] += 300.0 * np.exp(-(xx**2 + yy**2) / (2 * width**2))
    features = rng.normal(0.0, 1.0, (batch_size, len(ALERCE23))).astype("float32")
    return {"stamps": stamps, "stamp_mask": mask, "features": features}, labels


def check_augmentation(rng, batch_size, repeats) -> bool:
    augment = StampAugmentation(max_shift=2, min_crop_size=41, noise_level=0.1, seed=0)
    inputs, _ = random_batch(rng, batch_size)
    stamps = keras.ops.convert_to_tensor(inputs["stamps"])
    mask = keras.ops.convert_to_tensor(inputs["stamp_mask"])
    same_stamps, _ = augment(stamps, mask, training=False)
    identity = bool(np.array_equal(keras.ops.convert_to_numpy(same_stamps), inputs["stamps"]))
    out_stamps, out_mask = augment(stamps, mask, training=True)  # warm-up / compile
    keras.ops.convert_to_numpy(out_stamps)
    start = time.perf_counter()
    for _ in range(repeats):
        out_stamps, out_mask = augment(stamps, mask, training=True)
    keras.ops.convert_to_numpy(out_stamps)
    seconds = time.perf_counter() - start
    placed_on = device_of(out_stamps)
    out_mask = keras.ops.convert_to_numpy(out_mask)
    out_stamps = keras.ops.convert_to_numpy(out_stamps)
    binary = set(np.unique(out_mask).tolist()) <= {0.0, 1.0}
    finite = bool(np.all(np.isfinite(out_stamps)))
    print(f"augmentation: output on {placed_on}")
    print(
        f"augmentation: identity at inference: {identity}; masks binary: {binary}; finite: {finite}"
    )
    print(
        f"augmentation: {repeats * batch_size / seconds:,.0f} stamps/s "
        f"(batch {batch_size}, {seconds / repeats * 1e3:.2f} ms per batch, eager)"
    )
    return identity and binary and finite


def check_training(rng, batch_size, steps, epochs) -> bool:
    stats = FeatureStats.from_values(ALERCE23, [0.0] * 23, [1.0] * 23)
    classifier = build_stamp_classifier(class_names=ALERCE_CLASSES, feature_stats=stats)
    inputs = {
        name: keras.Input(shape=tensor.shape[1:], name=name)
        for name, tensor in random_batch(rng, 1)[0].items()
    }
    stamps, mask = StampAugmentation(seed=1)(inputs["stamps"], inputs["stamp_mask"])
    outputs = classifier({"stamps": stamps, "stamp_mask": mask, "features": inputs["features"]})
    trainable = keras.Model(inputs, outputs, name="augmented_stamp_classifier")
    trainable.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=EntropyRegularisedCrossentropy(beta=0.5),
        metrics=["sparse_categorical_accuracy"],
    )
    train_x, train_y = random_batch(rng, batch_size * steps)
    start = time.perf_counter()
    history = trainable.fit(train_x, train_y, batch_size=batch_size, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    losses = history.history["loss"]
    accuracy = history.history["sparse_categorical_accuracy"][-1]
    print(
        f"training: loss {losses[0]:.4f} -> {losses[-1]:.4f}, final accuracy {accuracy:.3f}, "
        f"{epochs * steps * batch_size / seconds:,.0f} alerts/s incl. compilation"
    )
    test_x, _ = random_batch(rng, 64)
    base = keras.ops.convert_to_numpy(classifier(test_x, training=False))
    worst = 0.0
    for k in (1, 2, 3):
        rotated = dict(test_x)
        rotated["stamps"] = np.rot90(test_x["stamps"], k, axes=(1, 2)).copy()
        rotated["stamp_mask"] = np.rot90(test_x["stamp_mask"], k, axes=(1, 2)).copy()
        probabilities = keras.ops.convert_to_numpy(classifier(rotated, training=False))
        worst = max(worst, float(np.abs(probabilities - base).max()))
    print(
        f"training: output on {device_of(classifier(test_x, training=False))}; "
        f"rotation invariance max |dp| = {worst:.2e}"
    )
    return losses[-1] < losses[0] and worst <= 1e-5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND')}"
    )
    if keras.backend.backend() == "jax":
        import jax

        print(f"jax {jax.__version__} devices: {jax.devices()}")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    passed = check_augmentation(rng, args.batch_size, args.repeats)
    passed = check_training(rng, args.batch_size, args.steps, args.epochs) and passed
    print("GPU CHECK", "PASSED" if passed else "FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
