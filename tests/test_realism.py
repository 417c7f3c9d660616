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
    real = realism.collect(files)
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


def test_class_mix_weights_give_the_simulated_alerts_the_real_class_mix(realism, samples):
    _, real_labelled, simulated = samples
    weights = realism.class_mix_weights(real_labelled, simulated)
    assert weights.shape == (len(simulated),) and weights.sum() == pytest.approx(len(simulated))
    labels = np.array([row["label"] for row in simulated])
    real = np.array([row["label"] for row in real_labelled])
    for name in ALERCE_CLASSES:
        share = weights[labels == name].sum() / weights.sum()
        assert share == pytest.approx((real == name).mean())
