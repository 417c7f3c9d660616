"""Intervals over resamplings of the real sample's objects (``stampnet.evaluation.
sample_intervals``), on the labels and object ids of the 674 labelled alerts of ../shared/data/ztf
(609 objects: one gives 10 alerts, three 6, eleven 3 or more)."""

from __future__ import annotations

import collections
import csv

import numpy as np
import pytest

from stampnet.constants import ALERCE_CLASSES
from stampnet.evaluation.sample_intervals import object_intervals, paired_difference

CLASSES = len(ALERCE_CLASSES)


@pytest.fixture(scope="module")
def labelled(ztf_dir) -> tuple[np.ndarray, np.ndarray]:
    """(class index, objectId) of every labelled alert of the five classes."""
    with open(ztf_dir / "labels.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["label"] in ALERCE_CLASSES]
    labels = np.array([ALERCE_CLASSES.index(row["label"]) for row in rows])
    return labels, np.array([row["objectId"] for row in rows])


def _wrong_on(labels: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    return np.where(wrong, (labels + 1) % CLASSES, labels)


def test_errors_on_whole_objects_widen_the_interval_as_alert_resampling_cannot(labelled):
    # The same accuracy, 0.924: wrong on every alert of the 11 objects of 3 or more alerts (51
    # alerts), or on 51 objects of one alert each. Resampling alerts gives both an interval
    # 0.040 wide; resampling objects 0.090 for the first, 0.041 for the second.
    labels, objects = labelled
    counts = collections.Counter(objects)
    assert len(labels) >= 600 and max(counts.values()) >= 6
    clustered = np.isin(objects, [name for name, count in counts.items() if count >= 3])
    singles = sorted(name for name, count in counts.items() if count == 1)
    spread = np.isin(objects, singles[: int(clustered.sum())])
    widths = {}
    for name, wrong in (("clustered", clustered), ("spread", spread)):
        predictions = _wrong_on(labels, wrong)
        assert np.mean(predictions == labels) == pytest.approx(1 - clustered.mean())
        by_object = object_intervals(labels, predictions, objects, CLASSES)
        by_alert = object_intervals(labels, predictions, np.arange(len(labels)), CLASSES)
        low, high = by_object["accuracy"]
        assert low < np.mean(predictions == labels) < high
        widths[name] = (high - low, np.diff(by_alert["accuracy"])[0])
    assert widths["clustered"][0] > 1.6 * widths["clustered"][1], widths
    assert widths["clustered"][0] > 1.6 * widths["spread"][0], widths
    assert abs(widths["spread"][0] / widths["spread"][1] - 1) < 0.25, widths


def test_a_paired_difference_cancels_what_both_sides_share(labelled):
    labels, objects = labelled
    rng = np.random.default_rng(0)
    shared = rng.random(len(labels)) < 0.3  # both sides wrong here: it cancels in the difference
    better = _wrong_on(labels, shared)
    worse = _wrong_on(labels, shared | (rng.random(len(labels)) < 0.05))
    same = paired_difference(labels, better, better, objects, CLASSES)
    assert same["accuracy"]["difference"] == 0 and same["accuracy"]["interval"] == [0.0, 0.0]
    result = paired_difference(labels, better, worse, objects, CLASSES)
    for name in ("accuracy", "macro_recall"):
        low, high = result[name]["interval"]
        assert 0 < low < result[name]["difference"] < high, (name, result[name])
        assert result[name]["share_above_zero"] > 0.97
    # Unpaired, each side's own interval is much wider than the paired difference's.
    own = object_intervals(labels, better, objects, CLASSES)["accuracy"]
    paired = result["accuracy"]["interval"]
    assert own[1] - own[0] > 2 * (paired[1] - paired[0]), (own, paired)
    # Several runs per side (seeds) are averaged within each draw; swapping the sides negates.
    runs = paired_difference(labels, np.stack([worse, worse]), better, objects, CLASSES)
    assert runs["accuracy"]["difference"] == pytest.approx(-result["accuracy"]["difference"])
    assert runs["accuracy"]["share_above_zero"] < 0.03
    with pytest.raises(ValueError, match="of the same alerts"):
        paired_difference(labels, better[:-1], better, objects, CLASSES)
