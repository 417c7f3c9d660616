"""The k-shot curve (``stampnet.evaluation.kshot``, ``benchmarks/kshot.py``) on a few real labelled
alerts of ../shared/data/ztf per class, fine-tuning ALeRCE's 2019 import for two batches."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from stampnet.constants import ALERCE_CLASSES
from stampnet.evaluation.kshot import choose_k, object_split
from stampnet.evaluation.real_sample import load_real_sample
from stampnet.evaluation.transfer import evaluate_on_sample
from stampnet.models.alerce_import import import_alerce_checkpoint
from tests.conftest import REPO_ROOT
from tests.test_transfer import few_rows


@pytest.fixture(scope="module")
def sample(ztf_dir):
    return load_real_sample(ztf_dir, candids=[int(row["candid"]) for row in few_rows(ztf_dir)])


def test_evaluation_objects_are_held_back_whole_and_every_class_is_on_both_sides(sample):
    pool, held_out = object_split(sample, eval_fraction=0.3, seed=0)
    assert sorted([*pool, *held_out]) == list(range(len(sample)))
    assert not set(sample.object_ids[pool]) & set(sample.object_ids[held_out])
    for index in range(len(ALERCE_CLASSES)):
        assert (sample.labels[held_out] == index).any()
        assert (sample.labels[pool] == index).any()
    again = object_split(sample, eval_fraction=0.3, seed=0)
    np.testing.assert_array_equal(again[1], held_out)
    with pytest.raises(ValueError, match="eval_fraction"):
        object_split(sample, eval_fraction=1.0)


def test_k_alerts_per_class_come_from_the_pool(sample):
    pool, _ = object_split(sample)
    chosen = choose_k(sample, pool, 1, seed=3)
    assert set(chosen) <= set(pool)
    assert np.bincount(sample.labels[chosen], minlength=5).tolist() == [1] * 5
    np.testing.assert_array_equal(chosen, choose_k(sample, pool, 1, seed=3))
    np.testing.assert_array_equal(choose_k(sample, pool, None, seed=0), np.sort(pool))
    assert choose_k(sample, pool, 0, seed=0).size == 0


def test_kshot_command_fine_tunes_and_writes_table_json_and_plot(
    ztf_dir, sample, alerce_2019_dir, tmp_path, capsys
):
    out = tmp_path / "kshot"
    out.mkdir()
    alerce = import_alerce_checkpoint(alerce_2019_dir, name="alerce2019")
    alerce.save(out / "alerce2019.keras")  # the command reuses an import found in --out
    candids = tmp_path / "candids.txt"
    candids.write_text("\n".join(str(candid) for candid in sample.candids))
    spec = importlib.util.spec_from_file_location("kshot", REPO_ROOT / "benchmarks/kshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    arguments = ["--real", str(ztf_dir), "--candids", str(candids), "--starts", "alerce2019"]
    arguments += ["--ks", "0", "1", "--seeds", "0", "--steps", "2", "--batch-size", "4"]
    assert module.main([*arguments, "--out", str(out)]) == 0
    report = json.loads((out / "kshot.json").read_text())
    assert [(row["k"], row["seed"], row["train_alerts"]) for row in report["runs"]] == [
        (0, 0, 0),
        (1, 0, 5),
    ]
    # k = 0 is the import as it is, on the held-back alerts.
    _, held_out = object_split(sample, 0.3)
    untouched = evaluate_on_sample(alerce, sample.subset(held_out))
    assert report["runs"][0]["accuracy"] == pytest.approx(untouched["accuracy"])
    assert report["runs"][0]["eval_alerts"] == held_out.size
    assert [entry["k"] for entry in report["summary"]] == [0, 1]
    kept = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert kept == report["runs"]  # partial results, written as each run finished
    assert (out / "kshot.png").stat().st_size > 1000 and (out / "kshot.csv").is_file()
    assert "+-" in capsys.readouterr().out
    # A curve cut short is summarised from runs.jsonl alone.
    (out / "kshot.json").unlink()
    assert module.main(["--out", str(out), "--from-runs"]) == 0
    again = json.loads((out / "kshot.json").read_text())
    assert again["cut_short"] and again["summary"] == report["summary"]


def test_a_frozen_trunk_keeps_the_convolutions_and_trains_the_dense_layers(
    sample, alerce_2019_dir, tmp_path
):
    from stampnet.evaluation.kshot import finetune

    path = tmp_path / "alerce2019.keras"
    alerce = import_alerce_checkpoint(alerce_2019_dir, name="alerce2019")
    alerce.save(path)
    before = {layer.name: layer.get_weights() for layer in alerce.layers}
    pool, _ = object_split(sample)
    model = finetune(path, sample, pool, steps=2, batch_size=4, freeze_trunk=True)
    for layer in model.layers:
        if not layer.get_weights():
            continue
        unchanged = all(
            np.array_equal(old, new)
            for old, new in zip(before[layer.name], layer.get_weights(), strict=True)
        )
        assert unchanged == layer.name.startswith("conv_"), layer.name
