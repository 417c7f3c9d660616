"""benchmarks/realism.py: real-vs-simulated AUC overall and per class, on a few real alerts and a
tiny simulation."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from stampnet.constants import ALERCE_CLASSES
from stampnet.data.labels import LabelTable
from stampnet.simulation.simulate import simulate
from tests.conftest import REPO_ROOT

#: Real nights holding VS, asteroid and bogus alerts (as tests/test_training.py).
NIGHTS = ("20191115", "20231012", "20200101", "20180904", "20181230")


@pytest.fixture(scope="module")
def realism():
    spec = importlib.util.spec_from_file_location("realism", REPO_ROOT / "benchmarks/realism.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def samples(realism, ztf_dir, tmp_path_factory):
    files = [ztf_dir / f"alerts/ztf_public_{night}.tar.gz" for night in NIGHTS]
    labels = LabelTable.from_csv(ztf_dir / "labels.csv")
    real = realism.collect(files, labels=labels, labelled_only=False)
    real_labelled = realism.collect(files, labels=labels)
    scratch = tmp_path_factory.mktemp("realism_sim")
    simulate(scratch, num_objects=25, seed=3, workers=1)
    simulated = realism.collect(
        scratch / "alerts", labels=LabelTable.from_csv(scratch / "labels.csv")
    )
    return real, real_labelled, simulated


def test_labelled_rows_carry_the_csv_label_and_unlabelled_alerts_are_left_out(samples, ztf_dir):
    real, real_labelled, simulated = samples
    table = pd.read_csv(ztf_dir / "labels.csv")
    files = [f"alerts/ztf_public_{night}.tar.gz" for night in NIGHTS]
    expected = table[table["file"].isin(files) & table["label"].isin(ALERCE_CLASSES)]
    assert sorted(row["label"] for row in real_labelled) == sorted(expected["label"])
    assert len(real) == int(table["file"].isin(files).sum()) > len(real_labelled)
    assert {row["label"] for row in simulated} == set(ALERCE_CLASSES)


def test_report_gives_overall_and_per_class_aucs(realism, samples, monkeypatch, capsys):
    monkeypatch.setattr(realism, "MIN_PER_CLASS", 5)
    real, real_labelled, simulated = samples
    report = realism.realism_report(real, real_labelled, simulated)
    for group in realism.FEATURE_GROUPS:
        assert 0.0 <= report[group]["auc"] <= 1.0
        assert 0.0 <= report[group]["labelled_class_matched_auc"] <= 1.0
        per_class = report[group]["per_class"]
        assert set(per_class) == set(ALERCE_CLASSES)
        for name, entry in per_class.items():
            assert entry["real"] == sum(row["label"] == name for row in real_labelled)
            assert entry["simulated"] == sum(row["label"] == name for row in simulated)
            enough = min(entry["real"], entry["simulated"]) >= 5
            assert ("auc" in entry) == enough
            if enough:
                assert 0.0 <= entry["auc"] <= 1.0 and len(entry["most_separating"]) == 3
    assert any("auc" in entry for entry in report["normalised"]["per_class"].values())
    realism.print_report(report)
    printed = capsys.readouterr().out
    assert "per class" in printed and "n/a" in printed
    assert len(report["between_nights"]["nights"]) == 2 and "two real nights" in printed


def test_class_mix_weights_give_the_simulated_alerts_the_real_class_mix(realism, samples):
    _, real_labelled, simulated = samples
    weights = realism.class_mix_weights(real_labelled, simulated)
    assert weights.shape == (len(simulated),) and weights.sum() == pytest.approx(len(simulated))
    labels = np.array([row["label"] for row in simulated])
    real = np.array([row["label"] for row in real_labelled])
    for name in ALERCE_CLASSES:
        share = weights[labels == name].sum() / weights.sum()
        assert share == pytest.approx((real == name).mean())


def test_a_night_runs_from_local_noon_to_local_noon_at_palomar(realism):
    evening = 2458849.5 + 3 / 24  # 2020-01-01 03:00 UTC: 19:00 the evening before at Palomar
    assert realism.observing_night(evening) == realism.observing_night(evening + 10 / 24)
    # JD's own day boundary (12:00 UTC) falls at 04:00 at Palomar, inside the night.
    assert realism.observing_night(2458849.99) == realism.observing_night(2458850.01)
    assert realism.observing_night(2458849.5 + 20.1 / 24) == realism.observing_night(evening) + 1
    assert realism.observing_night(float("nan")) == -1


def test_alerts_of_one_nightly_file_share_a_night_and_the_largest_two_are_compared(
    realism, samples, monkeypatch
):
    monkeypatch.setattr(realism, "MIN_PER_CLASS", 5)
    real, _, simulated = samples
    by_night = {}
    for row in real:
        by_night.setdefault(row["night"], []).append(row)
    assert len(by_night) == len(NIGHTS)  # one Palomar night per nightly file (UTC dates)
    nights = realism.between_nights(real, simulated)
    sizes = sorted((len(rows) for rows in by_night.values()), reverse=True)
    assert nights["alerts"] == sizes[:2]
    assert [len(by_night[night]) for night in nights["nights"]] == sizes[:2]
    for group in realism.FEATURE_GROUPS:
        entry = nights[group]
        assert 0.0 <= entry["auc"] <= 1.0 and len(entry["against_simulated"]) == 2
        assert 0.0 <= entry["first_night_halves_auc"] <= 1.0
        for name, found in entry["per_class"].items():
            counts = [sum(row["label"] == name for row in by_night[n]) for n in nights["nights"]]
            assert found["alerts"] == counts and min(counts) >= 5
    # The rows of the real stream carry their labels too, unlabelled ones included.
    assert {row["label"] for row in real} > {"unknown"}
    assert realism.between_nights(by_night[nights["nights"][0]], simulated) == {}


def test_stream_classes_keep_labels_and_class_the_rest_by_probability(
    realism, samples, tmp_path, monkeypatch
):
    monkeypatch.setattr(realism, "MIN_PER_CLASS", 5)
    real, real_labelled, simulated = samples
    unlabelled = [row for row in real if row["label"] not in ALERCE_CLASSES]
    labelled = [row for row in real if row["label"] in ALERCE_CLASSES]
    # Every unlabelled alert but the first called VS, the first skipped; a labelled alert's row
    # must not overrule its label.
    rows = [{"candid": row["candid"], "skipped": 0} for row in unlabelled[1:] + labelled]
    for row in rows:
        row.update({f"p_{name}": float(name == "VS") for name in ALERCE_CLASSES})
    rows.append({"candid": unlabelled[0]["candid"], "skipped": 1, "p_AGN": 1.0})
    path = tmp_path / "p.csv"
    pd.DataFrame(rows).fillna(0.0).to_csv(path, index=False)
    stream = realism.stream_classes(real, path)
    assert len(stream) == len(real) - 1
    by_candid = {row["candid"]: row["label"] for row in stream}
    assert all(by_candid[row["candid"]] == row["label"] for row in labelled)
    assert all(by_candid[row["candid"]] == "VS" for row in unlabelled[1:])
    report = realism.realism_report(real, real_labelled, simulated, stream)
    assert report["stream"]["alerts"] == len(stream)
    assert report["stream"]["classes"]["VS"] == len(unlabelled) - 1 + sum(
        row["label"] == "VS" for row in labelled
    )
    assert 0.0 <= report["normalised"]["stream_class_matched_auc"] <= 1.0
    pd.DataFrame(rows).drop(columns="p_SN").fillna(0.0).to_csv(path, index=False)
    with pytest.raises(ValueError, match="p_SN"):
        realism.stream_classes(real, path)
