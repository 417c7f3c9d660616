"""The light-curve history of real alerts: decoding, merging, storage and pipelines."""

from __future__ import annotations

import math

import fastavro
import numpy as np
import pytest
import tensorflow_datasets as tfds

from stampnet.data import history as history_lib
from stampnet.data.builder import load_builder
from stampnet.data.history import (
    HISTORY_FIELDS,
    KIND_DETECTION,
    KIND_FORCED,
    KIND_UPPER_LIMIT,
    merge_histories,
    pad_history,
)
from stampnet.data.pipeline import alert_dataset, sequence_dataset
from stampnet.data.readers import iter_alerts, iter_packets
from tests.dataset_helpers import build_quietly

COLUMN = {name: index for index, name in enumerate(HISTORY_FIELDS)}
#: Schema 4.02 packet with 11 prv_candidates (3 detections, 8 upper limits) and 10 fp_hists.
PACKET_402 = "schema_versions/v4.02_3044341005815015012.avro"
#: Fink parquet of one object (ZTF20abfcszi) with many packets.
MULTI_PACKET_PARQUET = "fink_parquet/fink-filters__datatest__tde__tde_ZTF20abfcszi_202008.parquet"


def rows_of(history, kind):
    return history[history[:, COLUMN["kind"]] == kind]


def test_real_packet_history_matches_its_avro_values(ztf_dir):
    """Values read by hand from the packet with fastavro (candidate.jd 2460798.8410069)."""
    alert = next(iter_alerts(ztf_dir / PACKET_402, history=True))
    history = alert.history
    assert history.shape == (22, len(HISTORY_FIELDS))  # 11 prv + 10 forced + the alert
    assert np.all(np.diff(history[:, COLUMN["days"]]) >= 0)
    detections = rows_of(history, KIND_DETECTION)
    limits = rows_of(history, KIND_UPPER_LIMIT)
    forced = rows_of(history, KIND_FORCED)
    assert (len(detections), len(limits), len(forced)) == (4, 8, 10)
    # prv_candidates[0]: jd 2460771.8285995, fid 1, magpsf 19.5718, sigmapsf 0.19253,
    # diffmaglim 19.9148, isdiffpos "t".
    first = detections[0]
    np.testing.assert_allclose(first[COLUMN["days"]], 2460771.8285995 - 2460798.8410069, atol=1e-5)
    assert first[COLUMN["fid"]] == 1 and first[COLUMN["isdiffpos"]] == 1
    np.testing.assert_allclose(first[[3, 4, 5]], [19.5718002, 0.1925330, 19.9148006], rtol=1e-6)
    np.testing.assert_allclose(first[COLUMN["flux"]], 10 ** (-0.4 * (19.5718002 - 23.9)), rtol=1e-5)
    # prv_candidates[1]: a non-detection in r, jd 2460771.9310417, diffmaglim 20.3593.
    np.testing.assert_allclose(limits[0, COLUMN["days"]], 2460771.9310417 - 2460798.8410069, 1e-5)
    assert limits[0, COLUMN["fid"]] == 2
    np.testing.assert_allclose(limits[0, COLUMN["diffmaglim"]], 20.3593006, rtol=1e-6)
    assert np.isnan(limits[:, [3, 4, 6, 7, 8]]).all()
    # fp_hists (first in the packet, latest in time): jd 2460796.9190741, fid 2,
    # forcediffimflux 338.32047 +- 22.272099 DN, magzpsci 26.2524 -> microjansky.
    last_forced = forced[-1]
    scale = 10 ** (-0.4 * (26.252399444580078 - 23.9))
    np.testing.assert_allclose(last_forced[COLUMN["days"]], 2460796.9190741 - 2460798.8410069, 1e-5)
    np.testing.assert_allclose(
        last_forced[[7, 8]], [338.3204650878906 * scale, 22.272098541259766 * scale], rtol=1e-5
    )
    np.testing.assert_allclose(
        last_forced[COLUMN["magpsf"]], 23.9 - 2.5 * math.log10(338.3204650878906 * scale), 1e-5
    )
    # The alert itself is the last row, at days 0.
    np.testing.assert_allclose(history[-1, [0, 1, 2, 3]], [0.0, 1, KIND_DETECTION, 19.6344948])


def test_forced_and_detected_flux_agree_on_the_same_night(ztf_dir):
    """Both conversions give one microjansky scale: a detection and the forced photometry of
    the same image agree within their errors."""
    history = next(iter_alerts(ztf_dir / PACKET_402, history=True)).history
    detections = rows_of(history, KIND_DETECTION)
    forced = rows_of(history, KIND_FORCED)
    for row in detections[:-1]:
        twin = forced[np.abs(forced[:, 0] - row[0]) < 1e-5]
        assert len(twin) == 1
        error = math.hypot(row[COLUMN["flux_error"]], twin[0, COLUMN["flux_error"]])
        assert abs(row[COLUMN["flux"]] - twin[0, COLUMN["flux"]]) < 2 * error


def test_history_is_skipped_unless_asked(ztf_dir):
    alert = next(iter_alerts(ztf_dir / PACKET_402))
    assert alert.history is None


def test_every_flavour_decodes_the_same_number_of_history_rows_as_fastavro(ztf_dir):
    """Spark re-serialisations (nullable unions, no fp_hists) and parquet rows too."""
    sources = [ztf_dir / PACKET_402, ztf_dir / MULTI_PACKET_PARQUET,
               ztf_dir / "multi_record_avro" / "avro_multi_alerts.avro"]  # fmt: skip
    expected = {}
    for source, packet in iter_packets(sources):
        prv = [entry for entry in packet.get("prv_candidates") or [] if entry.get("jd")]
        expected[source] = len(prv) + len(packet.get("fp_hists") or []) + 1
    found = {alert.source: len(alert.history) for alert in iter_alerts(sources, history=True)}
    assert found == expected
    assert sum(value > 1 for value in found.values()) >= 0.9 * len(found)


def test_fastavro_reader_schema_drops_history_subfields(ztf_dir):
    """The reduced reader schema keeps only HISTORY_SUBFIELDS inside prv_candidates/fp_hists."""
    with open(ztf_dir / PACKET_402, "rb") as handle:
        full = next(iter(fastavro.reader(handle)))
    packet = next(
        packet
        for _, packet in iter_packets(
            ztf_dir / PACKET_402,
            columns=("candidate", "prv_candidates", "fp_hists"),
            subfields=history_lib.HISTORY_SUBFIELDS,
        )
    )
    assert set(packet["prv_candidates"][0]) == set(history_lib.HISTORY_SUBFIELDS["prv_candidates"])
    for kept, original in zip(packet["fp_hists"], full["fp_hists"], strict=True):
        assert all(kept[name] == original[name] for name in kept)


def test_pad_history_keeps_the_most_recent_rows():
    records = np.zeros((5, len(HISTORY_FIELDS)), np.float32)
    records[:, 0] = [-4, -3, -2, -1, 0]
    history, mask = pad_history(records, 3)
    np.testing.assert_array_equal(history[:, 0], [-2, -1, 0])
    assert mask.all()
    history, mask = pad_history(records[:2], 4)
    np.testing.assert_array_equal(mask, [True, True, False, False])
    assert not history[2:].any()
    with pytest.raises(ValueError, match="max_length"):
        pad_history(records, 0)


def test_merged_light_curve_of_an_object_has_no_repeated_epoch(ztf_dir):
    alerts = sorted(
        iter_alerts(ztf_dir / MULTI_PACKET_PARQUET, history=True), key=lambda alert: alert.jd
    )
    assert len(alerts) > 5
    merged = merge_histories([(alert.jd, alert.history) for alert in alerts], alerts[0].jd)
    total = sum(len(alert.history) for alert in alerts)
    assert len(merged) < total  # consecutive packets repeat each other's 30 days
    keys = {(row[2], row[1], round(float(row[0]), 4)) for row in merged}
    assert len(keys) == len(merged)
    assert np.all(np.diff(merged[:, 0]) >= 0)
    # Every packet's own detection is in the merged curve, at its time from the first packet.
    detections = rows_of(merged, KIND_DETECTION)
    for alert in alerts:
        assert np.any(np.abs(detections[:, 0] - (alert.jd - alerts[0].jd)) < 1e-4)


@pytest.fixture(scope="module")
def history_build(ztf_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("history_build")
    sources = [ztf_dir / PACKET_402, ztf_dir / MULTI_PACKET_PARQUET]
    labels = root / "labels.csv"
    names = {alert.object_id for alert in iter_alerts(sources)}
    labels.write_text(
        "objectId,label\n"
        + "".join(
            f"{name},{'SN' if i % 2 else 'AGN'}\n" for i, name in enumerate(sorted(names))
        )  # fmt: skip
    )
    card = build_quietly(sources, root / "data", labels=labels, split_fractions=(1.0, 0.0, 0.0))
    return root / "data", card


def test_both_configs_store_the_history_and_the_card_describes_it(history_build):
    data_dir, card = history_build
    assert card["history"]["fields"] == list(HISTORY_FIELDS)
    assert card["history"]["alerts_with_history"] >= card["num_alerts"] - 1
    builder = load_builder(data_dir, "alerts")
    by_candid = {
        int(example["candid"]): example
        for example in tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False))
    }
    stored = by_candid[3044341005815015012]
    assert stored["history_mask"].sum() == 22
    np.testing.assert_allclose(stored["history"][21, :4], [0.0, 1, KIND_DETECTION, 19.6344948])
    sequences = load_builder(data_dir, "sequences")
    for example in tfds.as_numpy(sequences.as_dataset(split="train")):
        rows = example["history"][example["history_mask"]]
        assert len(rows) >= example["num_alerts"]
        assert np.all(np.diff(rows[:, 0]) >= 0)


def test_sequence_pipeline_hides_the_history_after_the_last_alert_used(history_build):
    data_dir, _ = history_build
    batches = {}
    for steps in (1, 3):
        dataset = sequence_dataset(
            data_dir, "train", batch_size=8, max_detections=steps, with_history=True,
            shuffle=False, with_ids=True,
        )  # fmt: skip
        for inputs, _ in dataset:
            for index, object_id in enumerate(inputs["object_id"].numpy()):
                batches[(steps, object_id)] = (
                    inputs["light_curve"][index].numpy(),
                    inputs["light_curve_mask"][index].numpy(),
                )
    long_object = [key[1] for key in batches if key[0] == 3 and b"ZTF20abfcszi" in key[1]][0]
    short_rows, short_mask = batches[(1, long_object)]
    long_rows, long_mask = batches[(3, long_object)]
    assert 0 < short_mask.sum() < long_mask.sum()
    for rows, mask in ((short_rows, short_mask), (long_rows, long_mask)):
        real = rows[mask > 0]
        assert real[:, 0].max() == pytest.approx(0.0, abs=1e-4)  # days to the last alert used
        assert not rows[mask == 0].any()


def test_alert_pipeline_yields_the_light_curve_only_when_asked(history_build):
    data_dir, _ = history_build
    plain, _ = next(iter(alert_dataset(data_dir, "train", batch_size=4, shuffle=False)))
    assert "light_curve" not in plain
    inputs, _ = next(
        iter(alert_dataset(data_dir, "train", batch_size=4, shuffle=False, with_history=True))
    )
    assert inputs["light_curve"].shape[1:] == (history_lib.MAX_ALERT_HISTORY, len(HISTORY_FIELDS))
    assert inputs["light_curve_mask"].shape[1:] == (history_lib.MAX_ALERT_HISTORY,)
    assert np.isfinite(inputs["light_curve"].numpy()[inputs["light_curve_mask"].numpy() == 0]).all()
