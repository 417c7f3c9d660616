"""The input study (``stampnet.evaluation.input_study``, ``benchmarks/input_study.py``): channel
subsets x feature sets x seeds, trained on a tiny dataset of real alerts."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from stampnet.constants import CHANNELS
from stampnet.evaluation.input_study import (
    PAPER_NUMBERS,
    all_channel_subsets,
    matrix_scores,
    parse_channel_subsets,
    plot_study,
    rows_from_runs,
    run_study,
    study_table,
    summarise,
)
from tests.conftest import REPO_ROOT
from tests.dataset_helpers import build_tiny_nights


@pytest.fixture(scope="module")
def tiny_data(ztf_dir, tmp_path_factory):
    return build_tiny_nights(ztf_dir, tmp_path_factory.mktemp("study_ztf"))


def tiny_base(data_dir):
    from stampnet.training.config import apply_overrides
    from stampnet.training.registry import get_spec

    return apply_overrides(
        get_spec("stamp_classifier").preset(),
        {
            "data": {"data_dir": str(data_dir)},
            "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 16, "verbose": 0},
        },
    )


def test_channel_subsets_are_the_seven_non_empty_ones_or_those_asked_for():
    subsets = all_channel_subsets()
    assert len(subsets) == 7 and subsets[0] == ("science",) and subsets[-1] == CHANNELS
    assert parse_channel_subsets("difference;science,template") == [
        ("difference",),
        ("science", "template"),
    ]
    with pytest.raises(ValueError, match="distinct names"):
        parse_channel_subsets("difference;sky")


def test_matrix_scores_count_only_classes_present():
    scores = matrix_scores([[3, 1, 0], [0, 0, 0], [2, 0, 2]])
    assert scores["accuracy"] == pytest.approx(5 / 8)
    assert scores["macro_recall"] == pytest.approx((3 / 4 + 2 / 4) / 2)


def test_summary_gives_mean_and_std_over_seeds():
    rows = [
        {"channels": "difference", "features": "none", "seed": seed, "test_accuracy": value}
        for seed, value in enumerate((0.5, 0.7))
    ]
    (entry,) = summarise(rows)
    assert entry["seeds"] == 2
    assert entry["test_accuracy_mean"] == pytest.approx(0.6)
    assert entry["test_accuracy_std"] == pytest.approx(0.1)
    table = study_table([entry])
    assert "0.600 +- 0.100" in table and "other data" in table


def test_study_trains_each_condition_and_seed_on_real_alerts(tiny_data, tmp_path):
    from stampnet.training.config import apply_overrides

    subsets = [("difference",), CHANNELS]
    rows = run_study(tiny_base(tiny_data), subsets, ["none"], [0, 1], tmp_path / "runs")
    assert [(row["channels"], row["seed"]) for row in rows] == [
        ("difference", 0),
        (",".join(CHANNELS), 0),
        ("difference", 1),
        (",".join(CHANNELS), 1),
    ]
    for row in rows:
        config = json.loads(
            (tmp_path / "runs" / row["run_dir"].split("/")[-1] / "config.json").read_text()
        )
        assert ",".join(config["model_config"]["channels"]) == row["channels"]
        assert config["train"]["seed"] == row["seed"]
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["test_examples"] > 0
        assert len(row["val_loss"]) == row["epochs"] == 1 and row["cpu_seconds"] > 0
    # A study cut short is summarised from its finished run folders: the same rows.
    rebuilt = rows_from_runs(tmp_path / "runs")
    key = lambda row: (row["seed"], row["channels"])  # noqa: E731
    assert sorted(rebuilt, key=key) == sorted(rows, key=key)

    # Run again, it trains nothing: the finished runs are read back. A run folder left without
    # the study's mark (killed after training, before scoring) is trained again.
    (tmp_path / "runs" / "difference-none-seed1" / "input_study.json").unlink()
    trained = []

    def train_fn(config):
        from stampnet.training.trainer import train

        trained.append((config.model_config.channels, config.train.seed, config.train.out))
        return train(config)

    again = run_study(
        tiny_base(tiny_data), subsets, ["none"], [0, 1], tmp_path / "runs", train_fn=train_fn
    )
    assert trained == [(("difference",), 1, str(tmp_path / "runs" / "difference-none-seed1"))]
    assert [key(row) for row in again] == [key(row) for row in rows]
    assert again[0] == rows[0]
    # Runs trained otherwise are not read back as this study's; how images-only runs would read
    # a missing catalogue match does not matter.
    other = apply_overrides(tiny_base(tiny_data), {"train": {"epochs": 2}})
    with pytest.raises(ValueError, match="difference-none-seed0 was trained otherwise .*epochs: 1"):
        run_study(other, subsets, ["none"], [0, 1], tmp_path / "runs", train_fn=None)
    clipping = apply_overrides(tiny_base(tiny_data), {"data": {"no_match": "clip"}})
    assert run_study(clipping, subsets, ["none"], [0, 1], tmp_path / "runs") == again
    summary = summarise(rows)
    assert [entry["seeds"] for entry in summary] == [2, 2]
    path = plot_study(summary, tmp_path / "study.png")
    assert path.stat().st_size > 1000
    assert PAPER_NUMBERS and all("other data" in number["source"] for number in PAPER_NUMBERS)


def test_a_feature_run_of_another_no_match_encoding_is_not_read_back(tiny_data, tmp_path):
    from stampnet.evaluation.input_study import check_same_setup
    from stampnet.training import runs
    from stampnet.training.config import apply_overrides

    condition = apply_overrides(tiny_base(tiny_data), {"data": {"feature_set": "alerce23"}})
    runs.write_config(tmp_path, condition)
    check_same_setup(tmp_path, condition)
    clipping = apply_overrides(condition, {"data": {"no_match": "clip"}})
    with pytest.raises(ValueError, match="data.no_match: 'missing' there, 'clip' here"):
        check_same_setup(tmp_path, clipping)
    # A run saved before the encoding was recorded clipped, as the built-in study's seeds 0-1.
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["data"]["no_match"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_same_setup(tmp_path, clipping)
    with pytest.raises(ValueError, match="data.no_match: 'clip' there, 'missing' here"):
        check_same_setup(tmp_path, condition)


def test_only_the_stamp_classifier_is_studied(tiny_data, tmp_path):
    from stampnet.training.config import RunConfig

    with pytest.raises(ValueError, match="trains stamp_classifier"):
        run_study(RunConfig(model="vae"), [CHANNELS], ["none"], [0], tmp_path)


def test_command_writes_table_csv_and_plot(tiny_data, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "input_study", REPO_ROOT / "benchmarks/input_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "study"
    arguments = ["--data", str(tiny_data), "--channels", "difference", "--features", "alerce23"]
    arguments += ["--seeds", "0", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "16"]
    assert module.main([*arguments, "--out", str(out)]) == 0
    report = json.loads((out / "study.json").read_text())
    assert len(report["runs"]) == 1 and report["runs"][0]["features"] == "alerce23"
    table = pd.read_csv(out / "study.csv")
    assert np.isfinite(table["test_accuracy_mean"]).all()
    assert (out / "study.png").is_file() and (out / "curves.png").is_file()
    assert "| difference | alerce23 | 1 | " in (out / "study.md").read_text()
    assert "difference" in capsys.readouterr().out


@pytest.fixture(scope="module")
def few_real(ztf_dir):
    from stampnet.evaluation.real_sample import load_real_sample
    from tests.test_transfer import few_rows

    return load_real_sample(ztf_dir, candids=[int(row["candid"]) for row in few_rows(ztf_dir)])


def test_central_stamps_give_the_same_probabilities_as_whole_stamps(few_real):
    from stampnet.evaluation.input_study_real import central_stamps
    from stampnet.geometry import StampGeometry
    from stampnet.models.stamp_classifier import build_stamp_classifier

    whole = build_stamp_classifier(class_names=few_real.class_names, channels=("difference",))
    central = build_stamp_classifier(
        class_names=few_real.class_names,
        channels=("difference",),
        geometry=StampGeometry(25, 25),
    )
    central.set_weights(whole.get_weights())
    cut = central_stamps(few_real)
    assert cut.stamps.shape[1:] == (25, 25, 3) and cut.stamp_mask.shape[1:] == (25, 25, 3)
    np.testing.assert_allclose(
        central.predict(cut.inputs(), verbose=0),
        whole.predict(few_real.inputs(), verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_real_study_trains_on_the_pool_and_scores_the_held_back_objects(few_real, tmp_path):
    from stampnet.evaluation.input_study_real import run_real_study, validation_split
    from stampnet.evaluation.kshot import object_split

    pool, held_out = object_split(few_real)
    train, validation = validation_split(few_real, pool)
    assert sorted([*train, *validation]) == sorted(pool)
    assert not set(few_real.object_ids[train]) & set(few_real.object_ids[validation])
    kept = []
    rows = run_real_study(
        few_real,
        [("difference",), ("science", "template")],
        ["none", "alerce23"],
        [0],
        max_epochs=1,
        patience=1,
        batch_size=8,
        log=lambda line: None,
        on_row=kept.append,
        done={("science,template", "none", 0)},  # finished before: skipped
    )
    assert kept == rows
    assert [(row["channels"], row["features"]) for row in rows] == [
        ("difference", "none"),
        ("difference", "alerce23"),
        ("science,template", "alerce23"),
    ]
    for row in rows:
        assert row["eval_alerts"] == held_out.size == np.sum(row["real_confusion_matrix"])
        assert row["train_alerts"] + row["validation_alerts"] == pool.size
        assert 1 <= row["best_epoch"] <= row["epochs"] <= 1
        assert 0.0 <= row["real_accuracy"] <= 1.0 and np.isfinite(row["real_macro_f1"])
        assert len(row["loss"]) == len(row["val_loss"]) == len(row["epoch_cpu_seconds"]) == 1
        assert 0 < row["epoch_cpu_seconds"][0] < row["cpu_seconds"]
        assert row["evaluation_cpu_seconds"] > 0
        assert (row["max_epochs"], row["patience"], row["batch_size"]) == (1, 1, 8)
        assert row["no_match"] == "missing"  # the recipe's, recorded though not passed
    entry = summarise(rows)[0]
    assert {"real_accuracy_mean", "real_macro_f1_std"} <= set(entry)

    # The command summarises such rows (--from-runs) and resumes only with the same settings.
    module = load_command()
    out = tmp_path / "real"
    out.mkdir()
    (out / "runs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    arguments = ["--train-on-real", "--real", str(tmp_path), "--out", str(out)]
    assert module.main([*arguments, "--from-runs"]) == 0
    report = json.loads((out / "study.json").read_text())
    assert len(report["runs"]) == 3 and report["runs"][0]["real_accuracy_ci95"]
    low, high = report["runs"][0]["real_accuracy_ci95"]
    table = (out / "study.md").read_text()
    row = rows[0]
    assert f"| difference | none | 1 | {row['real_accuracy']:.3f} [{low:.2f}-" in table
    assert (out / "curves.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="line 1 .difference none seed 0. was trained with"):
        module.main([*arguments, "--max-epochs", "1", "--patience", "2", "--batch-size", "8"])
    # Rows written before the encoding was recorded clipped: the feature runs among them resume
    # only with --no-match-as clip; how images-only runs would read a match does not matter.
    settings = {"max_epochs": 1, "patience": 1, "batch_size": 8, "no_match": "missing"}
    module.check_settings(rows, settings, out / "runs.jsonl")
    legacy = [{k: v for k, v in row.items() if k != "no_match"} for row in rows]
    module.check_settings(legacy[:1], settings, out / "runs.jsonl")
    with pytest.raises(SystemExit, match="line 2 .difference alerce23 seed 0.*'no_match': 'clip'"):
        module.check_settings(legacy, settings, out / "runs.jsonl")
    module.check_settings(legacy, {**settings, "no_match": "clip"}, out / "runs.jsonl")


def load_command():
    spec = importlib.util.spec_from_file_location(
        "input_study", REPO_ROOT / "benchmarks/input_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
