"""``stampnet classify``: one CSV row per alert, rejected alerts listed with their reason, the
model's own feature list and class names used, results independent of batching."""

from __future__ import annotations

import os

import keras
import numpy as np
import pandas as pd
import pytest

from stampnet.cli import main as stampnet_main
from stampnet.data.alert import RejectionLog
from stampnet.data.readers import iter_alerts
from stampnet.features import FeatureStats, metadata_indices
from stampnet.inference import classify, load_classifier
from stampnet.models.stamp_classifier import build_stamp_classifier

CLASSES = ("AGN", "SN", "VS", "asteroid", "bogus")
FEATURES = ("magpsf", "sgscore1", "rb", "ndethist")
COLUMNS = ["candid", "objectId", *(f"p_{name}" for name in CLASSES)]
COLUMNS += ["predicted_class", "model_name", "model_version", "source", "rejected"]
COLUMNS += ["missing_features"]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    stats = FeatureStats.from_values(FEATURES, [18.0, 0.5, 0.7, 5.0], [1.5, 0.4, 0.2, 6.0])
    return build_stamp_classifier(
        class_names=CLASSES, feature_stats=stats, model_version="test-1", name="tiny_classifier"
    )


@pytest.fixture(scope="module")
def sources(ztf_dir, tmp_path_factory):
    """The eight schema-version packets (2.0 to 4.02) and a file that is not an alert file."""
    junk = tmp_path_factory.mktemp("junk") / "broken.avro"
    junk.write_bytes(b"this is not an Avro alert packet" * 10)
    return [ztf_dir / "schema_versions", junk]


def test_one_row_per_alert_and_rejections_listed(model, sources, tmp_path):
    summary = classify(model, sources, tmp_path / "p.csv", batch_size=3)
    table = pd.read_csv(tmp_path / "p.csv", dtype={"rejected": str, "objectId": str, "candid": str})
    assert list(table.columns) == COLUMNS
    assert summary["classified"] == 8 and summary["rejected"] == 1
    classified = table[table["rejected"].isna()]
    assert len(classified) == 8
    probabilities = classified[COLUMNS[2:7]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert list(classified["predicted_class"]) == [CLASSES[i] for i in probabilities.argmax(1)]
    assert set(classified["model_name"]) == {"tiny_classifier"}
    assert set(classified["model_version"]) == {"test-1"}
    assert classified["objectId"].str.startswith("ZTF").all()
    rejected = table[table["rejected"].notna()].iloc[0]
    assert rejected["source"].endswith("broken.avro") and "format" in rejected["rejected"]
    assert rejected[COLUMNS[2:8]].isna().all()


def test_batching_and_prefetch_do_not_change_probabilities(model, sources, tmp_path):
    classify(model, sources, tmp_path / "one.csv", batch_size=1, prefetch=0)
    classify(model, sources, tmp_path / "many.csv", batch_size=256)
    one = pd.read_csv(tmp_path / "one.csv", dtype={"candid": str})
    many = pd.read_csv(tmp_path / "many.csv", dtype={"candid": str})
    assert list(one["candid"]) == list(many["candid"])
    columns = COLUMNS[2:7]
    np.testing.assert_allclose(one[columns].to_numpy(), many[columns].to_numpy(), atol=1e-6)


def test_features_are_the_models_own_selected_by_name(model, ztf_dir):
    classifier = load_classifier(model)
    assert classifier.feature_names == FEATURES and classifier.class_names == CLASSES
    alerts = list(iter_alerts(ztf_dir / "schema_versions", rejections=RejectionLog(warn=False)))
    inputs = classifier.inputs(alerts)
    metadata = np.stack([alert.metadata for alert in alerts])
    expected = metadata[:, metadata_indices(FEATURES)].astype(np.float32)
    np.testing.assert_array_equal(inputs["features"], expected)
    assert inputs["stamps"].shape == (len(alerts), 63, 63, 3)


def test_cli_classifies_with_a_saved_model(model, ztf_dir, tmp_path, capsys):
    path = tmp_path / "tiny.keras"
    model.save(path)
    source = ztf_dir / "multi_record_avro" / "avro_multi_alerts_other.avro"
    out = tmp_path / "p.csv"
    arguments = ["classify", "--model", str(path), "--source", str(source), "--out", str(out)]
    assert stampnet_main(arguments) == 0
    assert "3 alerts classified with tiny_classifier (test-1)" in capsys.readouterr().out
    direct = pd.read_csv(out)
    classify(model, source, tmp_path / "direct.csv")
    reloaded = pd.read_csv(tmp_path / "direct.csv")
    columns = COLUMNS[2:7]
    np.testing.assert_allclose(direct[columns].to_numpy(), reloaded[columns].to_numpy(), atol=1e-6)


def test_models_without_class_names_and_missing_files_are_refused(tmp_path):
    inputs = {"stamps": keras.Input((63, 63, 3), name="stamps")}
    plain = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs["stamps"])))
    with pytest.raises(ValueError, match="class names"):
        load_classifier(plain)
    missing = tmp_path / "nowhere.keras"
    with pytest.raises(SystemExit, match="nowhere.keras"):
        stampnet_main(["classify", "--model", str(missing), "--source", ".", "--out", "p.csv"])


def test_reader_thread_errors_reach_the_caller_and_early_stops_do_not_hang():
    from stampnet.inference import _prefetch

    def failing():
        yield 1
        yield 2
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(_prefetch(failing(), depth=1))
    stream = _prefetch(iter(range(1000)), depth=1)
    assert next(stream) == 0
    stream.close()  # joins the reader thread: must return although it still has items


def test_every_counted_rejection_is_a_row_when_rejections_arrive_while_rows_are_written(
    model, ztf_dir, tmp_path, monkeypatch
):
    # Good alert files each followed by junk files, one alert per batch, a slow CSV writer and
    # slow rejections: the reader thread keeps adding rejections while the main thread writes
    # rows. Before the fix, rejections added between the copy of the list and its length were
    # counted but never written.
    import csv
    import time

    junk = []
    for index in range(24):
        path = tmp_path / f"junk{index:02d}.avro"
        path.write_bytes(b"not an alert packet %d" % index)
        junk.append(path)
    good = sorted((ztf_dir / "schema_versions").glob("*.avro"))
    sources = [item for i, path in enumerate(good) for item in (path, *junk[3 * i : 3 * i + 3])]
    real_writer = csv.writer

    class SlowWriter:
        def __init__(self, handle):
            self._writer = real_writer(handle)

        def writerow(self, row):
            time.sleep(0.003)
            return self._writer.writerow(row)

    real_add = RejectionLog.add

    def slow_add(self, *args, **kwargs):
        time.sleep(0.003)
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(csv, "writer", SlowWriter)
    monkeypatch.setattr(RejectionLog, "add", slow_add)
    summary = classify(model, sources, tmp_path / "p.csv", batch_size=1, prefetch=2)
    table = pd.read_csv(tmp_path / "p.csv", dtype={"rejected": str, "candid": str})
    assert summary["classified"] == 8 and summary["rejected"] == 24
    assert table["rejected"].notna().sum() == summary["rejected"]
    assert sorted(table.loc[table["rejected"].notna(), "source"]) == sorted(map(str, junk))


def test_classify_command_turns_onednn_on_unless_the_user_set_it(monkeypatch, tmp_path):
    """TensorFlow leaves oneDNN off on AVX2 CPUs; on, the ALeRCE model runs ~2x faster."""
    from stampnet import cli

    arguments = ["classify", "--model", str(tmp_path / "no.keras"), "--source", ".", "--out", "p"]
    seen = []
    monkeypatch.setattr(cli, "_run", lambda known, rest: seen.append(os.environ.copy()) or 0)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # first: the test's end restores the original
    stampnet_main(arguments)
    assert seen[-1]["TF_ENABLE_ONEDNN_OPTS"] == "0" and os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    stampnet_main(arguments)
    assert seen[-1]["TF_ENABLE_ONEDNN_OPTS"] == "1"
    # Set for the command only: processes an in-process caller starts later do not inherit it.
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ


def test_light_curve_model_gets_the_history_that_fastavro_decodes(ztf_dir, tmp_path):
    """classify reads the history with the compiled walker (``history_columns``): the
    probabilities equal the model's on the history decoded from fastavro's entry dicts, on
    every schema version (4.x with fp_hists)."""
    from stampnet.data.history import HISTORY_COLUMNS, HISTORY_SUBFIELDS
    from stampnet.data.readers import ALERT_COLUMNS, alert_from_packet, iter_packets

    keras.utils.set_random_seed(2)
    model = build_stamp_classifier(class_names=CLASSES, light_curve_units=4, name="tiny_lc")
    classifier = load_classifier(model)
    assert classifier.uses_history
    source = ztf_dir / "schema_versions"
    summary = classify(classifier, source, tmp_path / "p.csv", batch_size=8)
    table = pd.read_csv(tmp_path / "p.csv", dtype={"candid": str})
    columns = ALERT_COLUMNS + HISTORY_COLUMNS  # fastavro: a dict per history entry
    packets = iter_packets(source, columns=columns, subfields=HISTORY_SUBFIELDS)
    alerts = [alert_from_packet(packet, name, history=True) for name, packet in packets]
    assert summary["classified"] == len(alerts) == 8
    assert sum(len(alert.history) > 1 for alert in alerts) >= 6
    expected = classifier.predict(classifier.inputs(alerts))  # one batch, as classify's
    assert list(table["candid"]) == [str(alert.candid) for alert in alerts]
    np.testing.assert_allclose(table[COLUMNS[2:7]].to_numpy(), expected, atol=1e-6)


def test_a_model_reading_matches_beyond_the_search_radius_as_distances_is_named(ztf_dir, tmp_path):
    """285 real alerts of 2023-10-18 list a PS1 source at 120", beyond ZTF's 30": a model that
    reads that as a distance (ALeRCE's clipping) is warned about and counted; one that reads it as
    missing is not."""
    night = ztf_dir / "alerts" / "ztf_public_20231018.tar.gz"
    names = ("magpsf", "distpsnr1", "sgscore1")
    counts = {}
    for no_match in ("clip", "missing"):
        stats = FeatureStats.from_values(names, [18.0, 3.0, 0.5], [1.5, 5.0, 0.4], None, no_match)
        keras.utils.set_random_seed(1)
        tiny = build_stamp_classifier(class_names=CLASSES, feature_stats=stats, name=no_match)
        if no_match == "clip":
            with pytest.warns(UserWarning, match="285 alerts list a catalogue match beyond"):
                summary = classify(tiny, [night], tmp_path / f"{no_match}.csv")
        else:
            summary = classify(tiny, [night], tmp_path / f"{no_match}.csv")
        counts[no_match] = (summary["classified"], summary["read_beyond_radius"])
    assert counts == {"clip": (838, 285), "missing": (838, 0)}
