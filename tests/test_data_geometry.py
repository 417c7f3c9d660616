"""Datasets take their stamp geometry from the data: a 21x21x4 real/bogus set built from real
ZTF alerts (centre crops plus a derived SNR-difference channel) builds, records its geometry in
the card, keeps the splits it was given, and reads back through the pipelines at 21x21x4."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stampnet.data.builder import load_builder
from stampnet.data.derived import DerivationError, add_snr_channel, snr_difference
from stampnet.data.pipeline import alert_dataset, sequence_dataset
from stampnet.data.readers import iter_alerts
from stampnet.data.stamps import fit_to_shape
from stampnet.geometry import StampGeometry
from tests.dataset_helpers import build_quietly

SOURCE = "multi_record_avro/part-00002-55a6e4a3-f920-47e5-a698-47f9b6bc5a74-c000.avro"
SPLIT_OF_ROW = ("train", "train", "validation", "test")


def cropped_reader(size: int = 21, odd_one: bool = False):
    """A reader of real alerts turned into Deep-HiTS-like 21x21x4 stamps, labelled by row."""

    def reader(sources, *, rejections):
        for row, alert in enumerate(iter_alerts(sources, rejections=rejections)):
            stamps, mask = fit_to_shape(alert.stamps, alert.stamp_mask, size, size)
            stamps, mask, channels = add_snr_channel(stamps, mask, alert.channels)
            if odd_one and row == 1:  # one alert of another geometry: rejected, not built
                stamps, mask, channels = stamps[..., :3], mask[..., :3], channels[:3]
            yield dataclasses.replace(
                alert,
                stamps=stamps,
                stamp_mask=mask,
                channels=channels,
                label=("real", "bogus")[row % 2],
                split=SPLIT_OF_ROW[row % 4],
            )

    return reader


@pytest.fixture(scope="module")
def small_geometry_build(ztf_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("geometry") / "data"
    card = build_quietly(
        [str(ztf_dir / SOURCE)], out, reader=cropped_reader(odd_one=True), max_detections=3
    )
    return out, card


def test_card_records_the_datas_geometry_and_binary_classes(small_geometry_build):
    _, card = small_geometry_build
    assert card["stamp_shape"] == [21, 21, 4]
    assert card["channels"] == ["science", "template", "difference", "snr_difference"]
    assert card["class_names"] == ["bogus", "real"]
    assert StampGeometry.from_card(card).shape == (21, 21, 4)
    assert card["storage"]["stamps"] == "float32" and card["storage"]["record_compression"] is None
    (rejection,) = card["rejections"]
    assert "channels" in rejection["reason"] and rejection["source"].endswith("#1")


def test_given_splits_are_kept(small_geometry_build, ztf_dir):
    data_dir, card = small_geometry_build
    alerts = [a for row, a in enumerate(iter_alerts(str(ztf_dir / SOURCE))) if row != 1]
    given = {
        a.candid: SPLIT_OF_ROW[row % 4]
        for row, a in enumerate(iter_alerts(str(ztf_dir / SOURCE)))
        if row != 1
    }
    # An object given several splits goes to the first in (train, validation, test) order.
    order = ("train", "validation", "test")
    object_split = {}
    for alert in alerts:
        current = object_split.get(alert.object_id, "test")
        object_split[alert.object_id] = min(current, given[alert.candid], key=order.index)
    expected = {a.candid: object_split[a.object_id] for a in alerts}
    assert len(set(object_split.values())) == 3
    builder = load_builder(data_dir, "alerts")
    found = {}
    for split in builder.info.splits:
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            found[int(example["candid"])] = split
            assert example["stamps"].shape == (21, 21, 4)
    assert found == expected
    assert card["num_alerts"] == len(expected)


def test_pipelines_yield_the_cards_geometry(small_geometry_build):
    data_dir, _ = small_geometry_build
    inputs, labels = next(iter(alert_dataset(data_dir, "train", batch_size=4, shuffle=False)))
    assert inputs["stamps"].shape[1:] == (21, 21, 4)
    assert inputs["stamp_mask"].shape[1:] == (21, 21, 4)
    assert set(labels.numpy()) <= {0, 1}
    dataset = sequence_dataset(data_dir, "train", batch_size=2, max_detections=2, shuffle=False)
    inputs, _ = next(iter(dataset))
    assert inputs["stamps"].shape[1:] == (2, 21, 21, 4)


def test_snr_channel_is_difference_over_robust_noise(ztf_dir):
    alert = next(iter_alerts(str(ztf_dir / SOURCE)))
    difference, mask = alert.stamps[..., 2], alert.stamp_mask[..., 2]
    valid = difference[mask].astype(np.float64)
    sigma = 1.4826 * np.median(np.abs(valid - np.median(valid)))
    snr = snr_difference(difference, mask)
    np.testing.assert_allclose(snr[mask], valid / sigma, rtol=1e-6)
    assert np.all(snr[~mask] == 0)
    # Gaussian noise: the robust sigma is the noise sigma, so pure noise has unit SNR spread.
    noise = np.random.default_rng(0).normal(0.0, 7.0, (63, 63))
    assert abs(np.std(snr_difference(noise, np.ones_like(noise, bool))) - 1.0) < 0.05
    with pytest.raises(DerivationError, match="no valid pixel"):
        snr_difference(difference, np.zeros_like(mask))


def test_fit_to_shape_keeps_the_centre_pixel():
    stamps = np.arange(63 * 63, dtype=np.float32).reshape(63, 63, 1)
    mask = np.ones_like(stamps, bool)
    cropped, cropped_mask = fit_to_shape(stamps, mask, 21, 21)
    assert cropped[10, 10, 0] == stamps[31, 31, 0] and cropped_mask.all()
    padded, padded_mask = fit_to_shape(cropped, cropped_mask, 31, 31)
    assert padded[15, 15, 0] == stamps[31, 31, 0]
    assert padded_mask.sum() == 21 * 21 and not padded_mask[0].any()
