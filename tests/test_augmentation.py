"""StampAugmentation: identity at inference, exact geometry, masks that follow the stamps."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from stampnet.data.readers import iter_alerts
from stampnet.layers.augmentation import StampAugmentation, robust_sigma, transform
from tests.model_checks import run_model_checks


@pytest.fixture(scope="module")
def real_stamps(ztf_dir):
    """Eight real alerts, some with NaN (masked) pixels, as a batch of stamps and masks."""
    alerts = list(iter_alerts(ztf_dir / "multi_record_avro"))
    masked = [alert for alert in alerts if not alert.stamp_mask.all()][:4]
    alerts = masked + [alert for alert in alerts if alert.stamp_mask.all()][: 8 - len(masked)]
    stamps = np.stack([alert.stamps for alert in alerts]).astype(np.float32)
    mask = np.stack([alert.stamp_mask for alert in alerts]).astype(np.float32)
    return stamps, mask


def params(batch, rotation=0, up=0, left=0, shift=(0, 0), crop=63):
    full = np.full
    return (
        full(batch, rotation, "int32"),
        full(batch, up, "int32"),
        full(batch, left, "int32"),
        (full(batch, shift[0], "int32"), full(batch, shift[1], "int32")),
        full(batch, crop, "int32"),
    )


def test_identity_when_not_training(real_stamps):
    stamps, mask = real_stamps
    layer = StampAugmentation(max_shift=3, min_crop_size=21, noise_level=1.0, seed=0)
    for training in (False, None):
        out, out_mask = layer(stamps, mask, training=training)
        np.testing.assert_array_equal(out, stamps)
        np.testing.assert_array_equal(out_mask, mask)


def test_rot90_and_flips_match_numpy():
    images = np.arange(2 * 63 * 63 * 3, dtype=np.float32).reshape(2, 63, 63, 3)
    ones = np.ones_like(images)
    for turns in range(4):
        out, _ = transform(images, ones, *params(2, rotation=turns))
        np.testing.assert_array_equal(out, np.rot90(images, turns, axes=(1, 2)))
    np.testing.assert_array_equal(transform(images, ones, *params(2, up=1))[0], images[:, ::-1])
    np.testing.assert_array_equal(
        transform(images, ones, *params(2, left=1))[0], images[:, :, ::-1]
    )


def test_shift_pads_with_invalid_zeros_and_crop_invalidates_the_border():
    images = np.random.default_rng(0).random((1, 63, 63, 3)).astype(np.float32) + 1
    ones = np.ones_like(images)
    out, out_mask = (np.asarray(t) for t in transform(images, ones, *params(1, shift=(2, -1))))
    np.testing.assert_array_equal(out[:, 2:, :-1], images[:, :-2, 1:])
    assert not out_mask[:, :2].any() and not out_mask[:, :, -1].any() and not out[:, :2].any()
    out, out_mask = (np.asarray(t) for t in transform(images, ones, *params(1, crop=21)))
    assert out_mask[0, 21:42, 21:42].all() and out_mask.sum() == 21 * 21 * 3
    assert not out[out_mask == 0].any()


def test_masks_follow_stamps_on_real_alerts(real_stamps):
    stamps, mask = real_stamps
    assert (mask == 0).any()  # the sample holds masked pixels; they must stay masked
    layer = StampAugmentation(max_shift=2, min_crop_size=41, seed=3)
    out, out_mask = (np.asarray(t) for t in layer(stamps, mask, training=True))
    assert not out[out_mask == 0].any() and set(np.unique(out_mask)) <= {0.0, 1.0}
    assert (out_mask.sum(axis=(1, 2, 3)) <= mask.sum(axis=(1, 2, 3))).all()
    rotation_only = StampAugmentation(max_shift=0, seed=3)
    out, out_mask = (np.asarray(t) for t in rotation_only(stamps, mask, training=True))
    for before, after in ((stamps, out), (mask, out_mask)):  # a permutation of each stamp
        np.testing.assert_array_equal(
            np.sort(before.reshape(8, -1, 3), axis=1), np.sort(after.reshape(8, -1, 3), axis=1)
        )


def test_same_transform_for_channels_and_time_steps_new_one_per_sample():
    image = np.random.default_rng(1).random((63, 63, 1)).astype(np.float32)
    sequences = np.broadcast_to(image, (16, 4, 63, 63, 3)).copy()
    layer = StampAugmentation(max_shift=2, min_crop_size=31, seed=5)
    out, out_mask = (
        np.asarray(t) for t in layer(sequences, np.ones_like(sequences), training=True)
    )
    assert out.shape == sequences.shape
    for tensor in (out, out_mask):
        np.testing.assert_array_equal(
            tensor, np.broadcast_to(tensor[:, :1, :, :, :1], tensor.shape)
        )
    assert len({out[index, 0].tobytes() for index in range(16)}) > 4


def test_seeded_layers_repeat_and_noise_scales_with_robust_sigma(real_stamps):
    stamps, mask = real_stamps
    first = StampAugmentation(seed=11)(stamps, mask, training=True)[0]
    np.testing.assert_array_equal(first, StampAugmentation(seed=11)(stamps, mask, training=True)[0])
    sigma = np.asarray(robust_sigma(stamps, mask))
    valid = np.where(mask[0, ..., 2] > 0, stamps[0, ..., 2], np.nan)
    mad = np.nanmedian(np.abs(valid - np.nanmedian(valid)))
    np.testing.assert_allclose(sigma[0, 0, 0, 2], 1.4826 * mad, rtol=1e-3)
    noisy_layer = StampAugmentation(rotate=False, flip=False, max_shift=0, noise_level=0.5, seed=0)
    noisy, noisy_mask = (np.asarray(t) for t in noisy_layer(stamps, mask, training=True))
    np.testing.assert_array_equal(noisy_mask, mask)
    residual = (noisy - stamps)[mask > 0].reshape(-1)
    assert 0 < residual.std() and not (noisy - stamps)[mask == 0].any()


def test_inside_a_model_that_is_saved_and_reloaded(real_stamps, tmp_path):
    stamps, mask = real_stamps
    stamp_input = keras.Input((63, 63, 3), name="stamps")
    mask_input = keras.Input((63, 63, 3), name="stamp_mask")
    augmented, augmented_mask = StampAugmentation(min_crop_size=41, noise_level=0.1, seed=2)(
        stamp_input, mask_input
    )
    pooled = keras.layers.GlobalAveragePooling2D()(augmented * augmented_mask)
    output = keras.layers.Dense(2, name="probabilities")(pooled)
    model = keras.Model({"stamps": stamp_input, "stamp_mask": mask_input}, output)
    run_model_checks(model, {"stamps": stamps, "stamp_mask": mask}, [(8, 2)], tmp_path)
    config = model.get_layer(index=2).get_config()
    assert config["min_crop_size"] == 41 and config["seed"] == 2


def test_stamp_layers_stay_float32_under_mixed_precision():
    # Raw stamps in counts pass float16's 65504 on bright or saturated stars (the simulator's
    # field stars reach 2.7e7): cast to float16 they become inf, and the min-max becomes NaN.
    from stampnet.layers.preprocessing import StampPreprocessing

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        augmentation = StampAugmentation(seed=0)
        preprocessing = StampPreprocessing(crop_size=21)
    finally:
        keras.config.set_dtype_policy(previous)
    stamps = np.random.default_rng(0).uniform(0, 1, (2, 63, 63, 3)).astype("float32")
    stamps[:, 30:33, 30:33, :] = 2.7e7
    masks = np.ones_like(stamps)
    moved, moved_mask = augmentation(stamps, masks, training=True)
    images = preprocessing(moved, moved_mask)
    assert images.dtype == "float32" and np.isfinite(np.asarray(images)).all()
    assert float(np.max(images)) == 1.0
