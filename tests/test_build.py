"""Building datasets: splits, card, duplicates, bad input, interrupted builds, the real sample."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import warnings
from collections import Counter

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stampnet.constants import ALERCE_CLASSES, UNLABELLED
from stampnet.data import splits
from stampnet.data.alert import REJECTIONS_FILE, Alert, RejectionWarning
from stampnet.data.build import build_dataset
from stampnet.data.builder import ZtfAlerts, load_builder, version_dir
from stampnet.data.card import FeatureAccumulator, feature_stats_for, load_card
from stampnet.data.staging import Staging
from stampnet.features import (
    ALERCE23,
    METADATA_FIELDS,
    NO_MATCH,
    NO_MATCH_ENCODINGS,
    FeatureStats,
)
from tests.dataset_helpers import UNSEEN_OBJECT, build_quietly, small_sources, write_small_labels

DUPLICATED_CANDID = 472263571115115000


def examples(data_dir, config):
    """Every example of every split, as numpy, with its split name."""
    builder = load_builder(data_dir, config)
    for split in builder.info.splits:
        for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
            yield split, example


# ----------------------------------------------------------------------------- splits, stats
def test_split_sizes_use_largest_remainder():
    assert splits.split_sizes(100, (0.7, 0.15, 0.15)) == (70, 15, 15)
    assert splits.split_sizes(1, (0.7, 0.15, 0.15)) == (1, 0, 0)
    assert splits.split_sizes(3, (0.7, 0.15, 0.15)) == (2, 1, 0)
    assert sum(splits.split_sizes(7, (0.5, 0.25, 0.25))) == 7
    with pytest.raises(ValueError, match="summing to 1"):
        splits.check_fractions((0.7, 0.2, 0.2))


def _synthetic_staging(directory, object_labels):
    """A Staging holding one tiny alert per object, ingested in the given order."""
    staging = Staging(directory)
    zeros = np.zeros((63, 63, 3), np.float32)
    for candid, (object_id, label) in enumerate(object_labels, start=1):
        alert = Alert(
            object_id, candid, 2.46e6, 1, zeros, zeros > -1, np.zeros(len(METADATA_FIELDS)),
            "synthetic", "4.02", (63, 63),
        )  # fmt: skip
        staging._add(alert, label)
    staging._db.commit()
    return staging


def _objects_per_split(staging) -> dict:
    return dict(staging._db.execute("SELECT object_id, split FROM objects").fetchall())


def test_sql_splits_are_stratified_order_free_and_seeded(tmp_path):
    objects = [(f"ZTF{i:05d}", "SN" if i % 4 == 0 else "VS") for i in range(400)]
    fractions = (0.7, 0.15, 0.15)
    with _synthetic_staging(tmp_path / "a", objects) as forward:
        forward.assign_splits(fractions, seed=0)
        first = _objects_per_split(forward)
        forward.assign_splits(fractions, seed=1)  # assigning again replaces the assignment
        other_seed = _objects_per_split(forward)
    with _synthetic_staging(tmp_path / "b", reversed(objects)) as backward:
        backward.assign_splits(fractions, seed=0)
        assert _objects_per_split(backward) == first
    labels = dict(objects)
    for label, total in Counter(labels.values()).items():
        per_split = Counter(first[name] for name, lab in labels.items() if lab == label)
        assert per_split == dict(
            zip(splits.SPLITS, splits.split_sizes(total, fractions), strict=True)
        )
    assert first != other_seed and Counter(first.values()) == Counter(other_seed.values())


def _assert_per_label_split_sizes(card):
    """Objects of every label are cut at the card's fractions (largest remainder), per object."""
    per_label = {}
    for split, counts in card["counts"]["sequences"].items():
        for label, count in counts.items():
            per_label.setdefault(label, Counter())[split] = count
    assert sum(sum(c.values()) for c in per_label.values()) == card["num_objects"]
    for label, counts in per_label.items():
        expected = splits.split_sizes(sum(counts.values()), card["split_fractions"])
        assert tuple(counts.get(split, 0) for split in splits.SPLITS) == expected, label


def test_object_label_prefers_labelled_alerts_and_is_order_free():
    assert splits.object_label(["unknown", "unknown", "SN"]) == "SN"
    assert splits.object_label(["VS", "SN"]) == splits.object_label(["SN", "VS"]) == "SN"
    assert splits.object_label(["unknown"]) == UNLABELLED
    assert splits.class_names_for(["bogus", "SN", "unknown"]) == ["SN", "bogus"]
    assert splits.class_names_for(["other", "SN"]) == ["SN", "other"]


def test_streaming_feature_stats_equal_feature_stats_fit():
    rng = np.random.default_rng(0)
    values = rng.normal(2.46e6, 3.0, size=(1000, len(METADATA_FIELDS)))
    values[rng.random(values.shape) < 0.2] = np.nan
    values[:, METADATA_FIELDS.index("fwhm")] = rng.uniform(0, 20, 1000)  # clipped at 10
    values[:, METADATA_FIELDS.index("drb")] = np.nan  # never present
    accumulator = FeatureAccumulator(METADATA_FIELDS)
    for chunk in np.array_split(values, 7):
        accumulator.update(chunk)
    expected = FeatureStats.fit(METADATA_FIELDS, values)
    np.testing.assert_allclose(accumulator.stats().mean, expected.mean, rtol=1e-12)
    np.testing.assert_allclose(accumulator.stats().std, expected.std, rtol=1e-6)
    assert accumulator.stats().clip_high == expected.clip_high or np.allclose(
        accumulator.stats().clip_high, expected.clip_high, equal_nan=True
    )
    # ZTF's -999 for a missing match: clipped to -1 by default, left out under "missing".
    distance = METADATA_FIELDS.index("distpsnr2")
    values[rng.random(len(values)) < 0.3, distance] = NO_MATCH
    accumulator = FeatureAccumulator(METADATA_FIELDS)
    for chunk in np.array_split(values, 5):
        accumulator.update(chunk)
    for encoding in NO_MATCH_ENCODINGS:
        expected = FeatureStats.fit(METADATA_FIELDS, values, no_match=encoding)
        np.testing.assert_allclose(accumulator.stats(encoding).mean, expected.mean, rtol=1e-12)
        np.testing.assert_allclose(accumulator.stats(encoding).std, expected.std, rtol=1e-6)
        assert accumulator.stats(encoding).no_match == encoding
    assert accumulator.stats("clip").std[distance] > 10 * accumulator.stats("missing").std[distance]


# ------------------------------------------------------------------------- small real build
@pytest.fixture(scope="module")
def small_build(ztf_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("small_build")
    labels = write_small_labels(ztf_dir, root / "labels.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RejectionWarning)
        card = build_dataset(small_sources(ztf_dir), root / "data", labels=labels, seed=3)
    return root / "data", card, [w for w in caught if w.category is RejectionWarning]


def test_duplicate_candid_kept_once_newest_schema(small_build):
    data_dir, card, caught = small_build
    duplicates = [r for r in card["rejections"] if r["reason"] == "duplicate candid"]
    assert [r["candid"] for r in duplicates] == [DUPLICATED_CANDID] * 3
    kept = [ex for _, ex in examples(data_dir, "alerts") if ex["candid"] == DUPLICATED_CANDID]
    assert len(kept) == 1 and kept[0]["source"].decode().endswith("v3.3_schema_3.3.avro")
    assert "3 x duplicate candid" in str(caught[0].message)


def test_label_for_unseen_object_is_a_rejection(small_build):
    _, card, caught = small_build
    unseen = [r for r in card["rejections"] if UNSEEN_OBJECT in r["source"]]
    assert unseen == [
        {"source": unseen[0]["source"], "candid": None, "reason": "label for an object never seen"}
    ]
    assert "1 x label for an object never seen" in str(caught[0].message)


def test_one_rejection_warning_and_every_rejection_in_the_file_beside_the_card(small_build):
    data_dir, card, caught = small_build
    assert len(caught) == 1 and REJECTIONS_FILE in str(caught[0].message)
    with gzip.open(data_dir / card["rejections_file"], "rt") as handle:
        listed = [json.loads(line) for line in handle]
    assert len(listed) == card["num_rejections"] == sum(card["rejection_counts"].values()) == 4
    assert listed[: len(card["rejections"])] == card["rejections"]


def test_every_alert_read_is_kept_or_rejected(small_build):
    data_dir, card, _ = small_build
    candids = [int(ex["candid"]) for _, ex in examples(data_dir, "alerts")]
    alert_rejections = [r for r in card["rejections"] if r["reason"] == "duplicate candid"]
    assert len(candids) == len(set(candids)) == card["num_alerts"]
    assert card["num_alerts_read"] == card["num_alerts"] + len(alert_rejections)
    assert sum(sum(c.values()) for c in card["counts"]["alerts"].values()) == len(candids)


def test_card_contents(small_build):
    data_dir, card, _ = small_build
    assert load_card(data_dir) == json.loads(json.dumps(card))  # what was written is returned
    assert card["class_names"] == ["AGN", "SN", "VS", "asteroid", "other"]
    assert card["metadata_fields"] == list(METADATA_FIELDS) and card["seed"] == 3
    assert all(len(source["sha256"]) == 64 for source in card["sources"])
    assert len(card["sources"]) == 8 + 4  # schema_versions holds 8 files
    stats = feature_stats_for(card, "alerce23")
    assert stats.names == ALERCE23
    train = np.array(
        [
            np.where(ex["metadata_present"], ex["metadata"], np.nan)
            for split, ex in examples(data_dir, "alerts")
            if split == "train"
        ]
    )
    expected = FeatureStats.fit(METADATA_FIELDS, train)  # from the float32 stored values
    np.testing.assert_allclose(card["feature_stats"]["mean"], expected.mean, rtol=1e-5, atol=1e-5)
    assert (train == NO_MATCH).any()  # real alerts with no PS1 source within 30"
    missing = FeatureStats.fit(METADATA_FIELDS, train, no_match="missing")
    np.testing.assert_allclose(
        card["feature_stats_no_match_missing"]["mean"], missing.mean, rtol=1e-5, atol=1e-5
    )
    assert feature_stats_for(card, "alerce23", "missing").no_match == "missing"
    old = {key: value for key, value in card.items() if key != "feature_stats_no_match_missing"}
    with pytest.raises(ValueError, match="rebuild the dataset"):
        feature_stats_for(old, "alerce23", "missing")


def test_objects_never_cross_splits_and_sequences_are_time_ordered(small_build):
    data_dir, card, _ = small_build
    split_of = {}
    for split, ex in examples(data_dir, "alerts"):
        assert split_of.setdefault(ex["object_id"], split) == split
    longest = None
    for split, ex in examples(data_dir, "sequences"):
        assert split_of[ex["object_id"]] == split
        assert np.all(np.diff(ex["jd"]) >= 0) and ex["num_alerts"] == len(ex["candid"]) <= 10
        assert ex["stamps"].shape == (len(ex["candid"]), 63, 63, 3)
        if ex["object_id"] == b"ZTF20abfcszi":
            longest = ex
    assert longest["num_alerts"] == card["max_detections"] == 10  # 21 alerts, first 10 kept
    all_jd = sorted(
        ex["jd"] for _, ex in examples(data_dir, "alerts") if ex["object_id"] == b"ZTF20abfcszi"
    )
    np.testing.assert_array_equal(longest["jd"], all_jd[:10])


def test_small_build_splits_every_label_at_the_fractions(small_build):
    _, card, _ = small_build
    _assert_per_label_split_sizes(card)


def test_loadable_with_tfds_apis(small_build):
    data_dir, card, _ = small_build
    builder = tfds.builder("ztf_alerts/sequences", data_dir=str(data_dir))
    assert builder.info.splits["train"].num_examples == sum(
        card["counts"]["sequences"]["train"].values()
    )
    from_directory = tfds.builder_from_directory(str(version_dir(data_dir, "alerts")))
    example = next(iter(from_directory.as_dataset(split="train")))
    assert example["stamps"].dtype == "float32" and example["stamp_mask"].dtype == "uint8"
    assert example["metadata"].shape == (len(METADATA_FIELDS),)


def test_existing_dataset_needs_overwrite(small_build, ztf_dir):
    data_dir, _, _ = small_build
    with pytest.raises(FileExistsError, match="overwrite"):
        build_dataset(small_sources(ztf_dir)[:1], data_dir)


# ----------------------------------------------------------------------- bad input, interrupts
def test_empty_input_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No alert files"):
        build_dataset(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.avro").write_bytes(b"Obj\x01 not really avro")
    with pytest.raises(ValueError, match="No usable alert"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectionWarning)
        build_dataset(tmp_path / "bad", tmp_path / "out")
    assert not (tmp_path / "out" / "dataset_card.json").exists()


def test_interrupted_build_looks_unfinished_and_rebuild_succeeds(ztf_dir, tmp_path, monkeypatch):
    source = [str(ztf_dir / "multi_record_avro" / "avro_multi_alerts.avro")]
    original = Staging.sequence_examples

    def failing(self, split, max_detections):
        for count, item in enumerate(original(self, split, max_detections)):
            if count == 2:
                raise RuntimeError("power cut")
            yield item

    monkeypatch.setattr(Staging, "sequence_examples", failing)
    with pytest.raises(RuntimeError, match="power cut"):
        build_quietly(source, tmp_path / "data", split_fractions=(1.0, 0.0, 0.0))
    assert not (tmp_path / "data" / "dataset_card.json").exists()
    sequences = tmp_path / "data" / "ztf_alerts" / "sequences"
    assert not list(sequences.glob("*/dataset_info.json"))  # no finished-looking version dir
    with pytest.raises(FileNotFoundError, match="No dataset card"):
        load_card(tmp_path / "data")
    monkeypatch.setattr(Staging, "sequence_examples", original)
    card = build_quietly(source, tmp_path / "data", split_fractions=(1.0, 0.0, 0.0))
    assert card["num_alerts"] == 8 and list(card["counts"]["sequences"]) == ["train"]
    assert not list((tmp_path / "data").rglob("incomplete*"))


def test_builder_needs_sources_to_build(tmp_path):
    with pytest.raises(ValueError, match="sources="):
        ZtfAlerts(config="alerts", data_dir=str(tmp_path)).download_and_prepare()


# ------------------------------------------------------------------ the full real sample (CLI)
@pytest.fixture(scope="session")
def sample_build(ztf_dir, tmp_path_factory):
    """`stampnet build` of the whole real sample, once per test session."""
    from stampnet.cli import main

    out = tmp_path_factory.mktemp("ztf_sample")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectionWarning)
        argv = ["build", "--source", str(ztf_dir), "--labels", str(ztf_dir / "labels.csv")]
        assert main([*argv, "--out", str(out), "--seed", "0", "--max-detections", "10"]) == 0
    return out, load_card(out), printed.getvalue()


@pytest.mark.slow
def test_sample_counts_match_readme(sample_build, ztf_dir):
    data_dir, card, printed = sample_build
    assert card["num_alerts"] == 2021 and card["num_objects"] == 1806
    assert "2021 alerts of 1806 objects" in printed
    per_label = Counter()
    for split_counts in card["counts"]["alerts"].values():
        per_label.update(split_counts)
    readme = {"SN": 86, "AGN": 28, "VS": 135, "asteroid": 300, "bogus": 125, "other": 33}
    assert per_label == {**readme, "unknown": 1314}
    assert card["class_names"] == sorted(readme)
    assert set(card["class_names"]) - {"other"} == set(ALERCE_CLASSES)
    assert card["rejection_counts"] == {"duplicate candid": 3}


@pytest.mark.slow
def test_sample_build_splits_every_label_per_object_at_the_fractions(sample_build):
    data_dir, card, _ = sample_build
    _assert_per_label_split_sizes(card)
    objects = Counter()
    for split, ex in examples(data_dir, "sequences"):
        objects[(split, ex["label"].decode())] += 1
    assert objects == Counter(
        {
            (split, label): n
            for split, c in card["counts"]["sequences"].items()
            for label, n in c.items()
        }
    )
    assert card["counts"]["sequences"]["test"]["SN"] > 0  # every class reaches every split


@pytest.mark.slow
def test_every_sample_alert_is_in_the_dataset_or_rejected(sample_build, ztf_dir):
    data_dir, card, _ = sample_build
    with open(ztf_dir / "labels.csv", newline="") as handle:
        expected = {int(row["candid"]): row["objectId"] for row in csv.DictReader(handle)}
    found = {int(ex["candid"]): ex["object_id"].decode() for _, ex in examples(data_dir, "alerts")}
    rejected = {r["candid"] for r in card["rejections"]}
    assert found == expected and rejected <= set(found)
    assert card["num_alerts_read"] == len(found) + len(card["rejections"])


@pytest.mark.slow
def test_sample_objects_never_cross_splits_and_sequences_are_ordered(sample_build):
    data_dir, card, _ = sample_build
    split_of, alerts_of = {}, Counter()
    for split, ex in examples(data_dir, "alerts"):
        assert split_of.setdefault(ex["object_id"], split) == split
        alerts_of[ex["object_id"]] += 1
    seen = 0
    for split, ex in examples(data_dir, "sequences"):
        seen += 1
        assert split_of[ex["object_id"]] == split
        assert np.all(np.diff(ex["jd"]) >= 0)
        assert ex["num_alerts"] == min(alerts_of[ex["object_id"]], 10)
        assert np.isfinite(ex["stamps"]).all() and set(np.unique(ex["stamp_mask"])) <= {0, 1}
    assert seen == 1806
