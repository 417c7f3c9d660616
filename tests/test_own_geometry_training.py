"""A 21x21x4 binary real/bogus dataset (real ZTF alerts cut to Deep-HiTS' size, plus a derived
SNR-difference channel) trains ``deep_hits``, ``stamp_classifier``, ``vae`` and ``seq_vae`` with
no code change, and ``evaluate.py`` writes its report for each run."""

from __future__ import annotations

import dataclasses
import json

import pytest

from stampnet.evaluation.command import evaluate_run
from stampnet.training.trainer import train
from tests.dataset_helpers import build_quietly
from tests.test_data_geometry import SOURCE, SPLIT_OF_ROW, cropped_reader
from tests.test_training import parse

TINY = ("--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--verbose", "0")
MODELS = {
    "deep_hits": ("--filters", "4", "--dense-units", "8"),
    "stamp_classifier": ("--features", "alerce23"),
    "vae": ("--filters", "4", "--dense-units", "8", "--latent-dim", "2"),
    "seq_vae": (
        "--filters", "4", "--dense-units", "8", "--latent-dim", "2", "--recurrent-units", "8",
        "--max-detections", "2",
    ),
}  # fmt: skip


def mixed_labels_reader():
    """``cropped_reader``'s 21x21x4 alerts (given splits by row), labelled so that every split
    holds both classes: real for rows 0-3, bogus for rows 4-7, ..."""
    crop = cropped_reader()

    def reader(sources, *, rejections):
        for row, alert in enumerate(crop(sources, rejections=rejections)):
            yield dataclasses.replace(
                alert, label=("real", "bogus")[(row // len(SPLIT_OF_ROW)) % 2]
            )

    return reader


@pytest.fixture(scope="module")
def binary_21x21x4(ztf_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("real_bogus") / "data"
    card = build_quietly(
        [str(ztf_dir / SOURCE)], out, reader=mixed_labels_reader(), max_detections=3
    )
    assert card["stamp_shape"] == [21, 21, 4] and card["class_names"] == ["bogus", "real"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model", list(MODELS))
def test_a_21x21x4_real_bogus_dataset_trains_and_evaluates(model, binary_21x21x4, tmp_path):
    config = parse("--model", model, "--data", str(binary_21x21x4), "--out", str(tmp_path / model),
                   *TINY, *MODELS[model])  # fmt: skip
    result = train(config)
    card = json.loads((result.run_dir / "model_card.json").read_text())
    assert card["stamp_shape"] == [21, 21, 4]
    assert card["channels"] == ["science", "template", "difference", "snr_difference"]
    assert card["class_names"] == ["bogus", "real"]
    evaluation = evaluate_run(result.run_dir, split="test")
    assert evaluation["num_examples"] > 0
    assert (result.run_dir / "evaluation" / f"{binary_21x21x4.name}-test" / "report.html").is_file()
    if model in ("deep_hits", "stamp_classifier"):
        assert evaluation["models"]["model"]["accuracy"] >= 0.0
