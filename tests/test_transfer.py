"""Transfer to real alerts: the labelled real sample as arrays, and per-class metrics of a
classifier on it (``stampnet.evaluation.real_sample``, ``stampnet.evaluation.transfer``,
``benchmarks/transfer.py``), on a few real alerts of ../shared/data/ztf per class."""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest

from stampnet.constants import ALERCE_CLASSES
from stampnet.evaluation.real_sample import load_real_sample
from stampnet.evaluation.transfer import (
    LABEL_NOTES,
    evaluate_on_sample,
    notes_for,
    reference_source_text,
)
from stampnet.features import METADATA_FIELDS
from stampnet.models.alerce_import import import_alerce_checkpoint
from tests.conftest import REPO_ROOT

PER_CLASS = 3


def few_rows(ztf_dir, per_class=PER_CLASS) -> list[dict]:
    """The first ``per_class`` labelled alerts of each ALeRCE class held in a small file."""
    rows = list(csv.DictReader(open(ztf_dir / "labels.csv", newline="")))
    rows.sort(key=lambda row: ((ztf_dir / row["file"].split(";")[0]).stat().st_size, row["candid"]))
    chosen = []
    for class_name in ALERCE_CLASSES:
        chosen += [row for row in rows if row["label"] == class_name][:per_class]
    return chosen


@pytest.fixture(scope="module")
def rows(ztf_dir):
    return few_rows(ztf_dir)


@pytest.fixture(scope="module")
def sample(ztf_dir, rows):
    return load_real_sample(ztf_dir, candids=[int(row["candid"]) for row in rows])


@pytest.fixture(scope="module")
def alerce_2019(alerce_2019_dir):
    return import_alerce_checkpoint(alerce_2019_dir, name="alerce_2019_images")


@pytest.fixture(scope="module")
def alerce_2020(alerce_2020_dir):
    return import_alerce_checkpoint(alerce_2020_dir, name="alerce_2020_features")


def test_real_sample_holds_the_labelled_alerts_with_their_csv_labels(sample, rows):
    expected = {int(row["candid"]): row for row in rows}
    assert sorted(sample.candids.tolist()) == sorted(expected)
    assert sample.class_counts() == dict.fromkeys(ALERCE_CLASSES, PER_CLASS)
    for index, candid in enumerate(sample.candids):
        row = expected[int(candid)]
        assert sample.class_names[sample.labels[index]] == row["label"]
        assert sample.object_ids[index] == row["objectId"]
        assert sample.strengths[index] == row["strength"]
    assert sample.stamps.shape == (len(rows), 63, 63, 3)
    assert set(np.unique(sample.stamp_mask)) <= {0.0, 1.0}
    # Raw stamps, as the reader gives them: not normalised, NaN-free (invalid pixels are 0).
    assert np.isfinite(sample.stamps).all() and sample.stamps.max() > 1.0


def test_unknown_and_other_alerts_are_left_out(ztf_dir):
    rows = list(csv.DictReader(open(ztf_dir / "labels.csv", newline="")))
    other = [int(row["candid"]) for row in rows if row["label"] in ("other", "unknown")][:3]
    with pytest.raises(ValueError, match="labels no alert"):
        load_real_sample(ztf_dir, candids=other)


def test_metrics_agree_with_the_models_own_predictions(sample, alerce_2019):
    result = evaluate_on_sample(alerce_2019, sample)
    predicted = np.array(result["predicted"])
    direct = alerce_2019.predict(sample.inputs(), verbose=0).argmax(axis=1)
    np.testing.assert_array_equal(predicted, direct)
    matrix = np.array(result["confusion_matrix"])
    assert matrix.sum() == len(sample)
    for index, name in enumerate(ALERCE_CLASSES):
        in_class = sample.labels == index
        assert result["per_class"][name]["recall"] == pytest.approx(
            np.mean(predicted[in_class] == index)
        )
    assert sum(part["alerts"] for part in result["by_strength"].values()) == len(sample)
    assert result["feature_names"] == [] and result["missing_features"] == 0
    assert result["no_match"] is None  # reads no features
    assert result["name"] == "alerce_2019_images"


def test_predictions_split_by_whether_the_template_holds_a_reference_source(sample, alerce_2019):
    result = evaluate_on_sample(alerce_2019, sample)
    split = result["by_reference_source"]
    for index, name in enumerate(ALERCE_CLASSES):
        parts = split[name]
        assert parts["source"]["alerts"] + parts["no_source"]["alerts"] == PER_CLASS
        both = [
            parts["source"]["predicted"][c] + parts["no_source"]["predicted"][c]
            for c in ALERCE_CLASSES
        ]
        assert both == result["confusion_matrix"][index]
    # Real variable stars are catalogued stars at the candidate; asteroids lie at random places.
    assert split["VS"]["source"]["alerts"] == PER_CLASS
    assert split["asteroid"]["no_source"]["alerts"] == PER_CLASS
    assert "asteroid" in reference_source_text(result)


def test_feature_models_read_the_packet_metadata_and_get_the_feature_caveat(sample, alerce_2020):
    result = evaluate_on_sample(alerce_2020, sample)
    assert len(result["feature_names"]) == 26
    assert result["no_match"] == "clip"  # ALeRCE's encoding, whatever the recipe's default
    notes = notes_for(result)
    assert LABEL_NOTES["features"] in notes and LABEL_NOTES["alerce"] in notes
    assert LABEL_NOTES["bogus"] in notes


def test_a_model_without_the_samples_classes_is_refused(sample):
    from stampnet.models.stamp_classifier import build_stamp_classifier

    model = build_stamp_classifier(class_names=("SN", "VS"), dropout_rate=0.0)
    with pytest.raises(ValueError, match=r"lacking \['AGN', 'asteroid', 'bogus'\]"):
        evaluate_on_sample(model, sample)


def test_transfer_benchmark_evaluates_given_runs_and_writes_json(
    ztf_dir, rows, sample, alerce_2019, tmp_path, capsys
):
    """benchmarks/transfer.py with --run (no training) on a labels file of a few alerts."""
    real = tmp_path / "real"
    real.mkdir()
    with open(real / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:  # absolute file paths: the alerts stay where they are
            writer.writerow({**row, "file": str(ztf_dir / row["file"].split(";")[0])})
    model_path = tmp_path / "alerce_2019.keras"
    alerce_2019.save(model_path)
    spec = importlib.util.spec_from_file_location("transfer", REPO_ROOT / "benchmarks/transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "transfer.json"
    arguments = ["--real", str(real), "--run", str(model_path), "--no-alerce", "--out", str(out)]
    assert module.main(arguments) == 0
    report = json.loads(out.read_text())
    result = report["results"]["alerce_2019.keras"]
    assert report["real_sample"]["counts"] == dict.fromkeys(ALERCE_CLASSES, PER_CLASS)
    assert result["num_examples"] == len(rows)
    assert result["notes"]
    assert result["objects"] == len(set(sample.object_ids.tolist()))
    low, high = result["intervals"]["accuracy"]
    assert low <= result["accuracy"] <= high and high - low > 0.05  # 15 alerts: a wide one
    assert report["real_sample"]["candids"] == sample.candids.tolist()
    # --compare: the built-in runs of earlier --out files against those of others, paired on
    # the same alerts; here the model's predictions against the labels themselves.
    compared, against = tmp_path / "compared.json", tmp_path / "against.json"
    compared.write_text(json.dumps({**report, "results": {"builtin-none-seed0": result}}))
    oracle = {**result, "predicted": sample.labels.tolist()}
    against.write_text(json.dumps({**report, "results": {"builtin-none-seed0": oracle}}))
    common = ["--real", str(real), "--features", "none", "--out", str(tmp_path / "cmp.json")]
    assert module.main([*common, "--compare", str(compared), "--against", str(against)]) == 0
    difference = json.loads((tmp_path / "cmp.json").read_text())["difference"]["accuracy"]
    assert difference["difference"] == pytest.approx(result["accuracy"] - 1.0)
    assert difference["interval"][0] <= difference["difference"] <= difference["interval"][1]
    shuffled = {**report["real_sample"], "candids": report["real_sample"]["candids"][::-1]}
    against.write_text(json.dumps({**report, "real_sample": shuffled}))
    with pytest.raises(ValueError, match="other real alerts"):
        module.main([*common, "--compare", str(compared), "--against", str(against)])
    # A bare model file names no training data, so no simulator version is claimed for it.
    assert result["data_generator"] is None and report["simulator_version"] is None
    assert report["builtin_size"] is None  # nothing was trained on the built-in data here
    # Training runs take the recipe's crop unless --crop-size asks for more context.
    import argparse

    from stampnet.constants import DEFAULT_CROP_SIZE

    options = {"size": "400", "data": None, "epochs": 30, "no_match_as": None}
    for crop, name in ((None, "builtin-none-seed1"), (41, "builtin-none-crop41-seed1")):
        args = argparse.Namespace(**options, crop_size=crop)
        config = module.builtin_config("none", 1, args, tmp_path / "runs")
        assert config.model_config.crop_size == (crop or DEFAULT_CROP_SIZE)
        assert config.train.out == str(tmp_path / "runs" / name) and config.train.epochs == 30
    # --no-match-as reaches the feature runs' data config and their names; the recipe's otherwise.
    args = argparse.Namespace(**{**options, "no_match_as": "missing"}, crop_size=None)
    config = module.builtin_config("alerce23", 1, args, tmp_path / "runs")
    assert config.data.no_match == "missing"
    assert config.train.out == str(tmp_path / "runs" / "builtin-alerce23-nomatchmissing-seed1")
    assert module.builtin_config("alerce23", 1, argparse.Namespace(**options, crop_size=None),
                                 tmp_path / "runs").data.no_match == "missing"  # fmt: skip
    args = argparse.Namespace(**{**options, "no_match_as": "clip"}, crop_size=None)
    assert module.builtin_config("alerce23", 1, args, tmp_path / "runs").data.no_match == "clip"
    assert report["crop_size"] is None and report["no_match"] is None  # --run: their configs say
    tag = "stampnet.simulation {} source=0 objects=1000 seed=0 difficulty=0.5"
    assert module.simulator_version([tag.format("1.6.7"), None]) == "1.6.7"
    assert module.simulator_version([tag.format("1.6.7"), tag.format("1.6.8")]) is None
    # A run's recorded dataset: its generator, until the data are rebuilt under the run.
    from stampnet.data.card import card_path, file_sha256, write_card

    data_dir, run = tmp_path / "builtin", tmp_path / "run"
    data_dir.mkdir()
    run.mkdir()
    write_card(data_dir, {"generator": tag.format("1.6.7")})
    recorded = {"data_dir": str(data_dir), "card_sha256": file_sha256(card_path(data_dir))}
    (run / "model_card.json").write_text(json.dumps({"data": recorded}))
    assert module.data_generator(run / "model.keras") == tag.format("1.6.7")
    write_card(data_dir, {"generator": tag.format("1.6.8")})
    assert module.data_generator(run / "model.keras") is None
    # A model card that records its dataset's generator (every run's, since the first trainer)
    # names the data it trained on even after they were rebuilt.
    recorded["generator"] = tag.format("1.6.7")
    (run / "model_card.json").write_text(json.dumps({"data": recorded}))
    assert module.data_generator(run / "model.keras") == tag.format("1.6.7")
    printed = capsys.readouterr().out
    assert "alerce_2019.keras" in printed and "rows: true label" in printed
    # benchmarks/history_split.py reads that JSON: each class's two sides add up to its row.
    spec = importlib.util.spec_from_file_location(
        "history_split", REPO_ROOT / "benchmarks/history_split.py"
    )
    split = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(split)
    assert split.main([str(out), "--real", str(real)]) == 0
    sn_row = result["confusion_matrix"][ALERCE_CLASSES.index("SN")]
    lines = [line for line in capsys.readouterr().out.splitlines() if ": SN ndethist" in line]
    assert len(lines) == 2
    called = [
        int(part.rsplit(" ", 1)[1]) for line in lines for part in line.split(": ")[2].split(", ")
    ]
    assert [called[i] + called[i + 5] for i in range(5)] == sn_row
    # benchmarks/confusion_cell.py reads it too: the cell with the most mistakes, beside the two
    # classes called right, counted as the confusion matrix counts them, and its stamps drawn.
    spec = importlib.util.spec_from_file_location(
        "confusion_cell", REPO_ROOT / "benchmarks/confusion_cell.py"
    )
    cell = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cell)
    matrix = np.array(result["confusion_matrix"])
    off_diagonal = np.where(np.eye(len(ALERCE_CLASSES), dtype=bool), -1, matrix)
    t, p = np.unravel_index(np.argmax(off_diagonal), matrix.shape)
    true, called = ALERCE_CLASSES[t], ALERCE_CLASSES[p]
    gallery = tmp_path / "cell.png"
    arguments = [str(out), "--true", true, "--predicted", called, "--real", str(real)]
    assert cell.main([*arguments, "--out", str(gallery)]) == 0
    printed = capsys.readouterr().out
    assert (
        f"{true} called {called}: {matrix[t, p]} | {true} called {true}: {matrix[t, t]} | "
        f"{called} called {called}: {matrix[p, p]}"
    ) in printed
    assert gallery.stat().st_size > 0
    groups = cell.cell_groups(sample.labels, result["predicted"], sample.class_names, true, called)
    right = groups[f"{called} called {called}"]
    ((_, stats),) = cell.field_table(sample.metadata, groups, ("magpsf",))
    magpsf = sample.metadata[right, METADATA_FIELDS.index("magpsf")]
    assert stats[2][0] == pytest.approx(np.median(magpsf)) and stats[2][3] == right.sum()
    with pytest.raises(ValueError, match="no mistake"):
        cell.main([str(out), "--true", true, "--predicted", true, "--real", str(real)])
