"""VAE pre-training on real stamps (``stampnet.evaluation.pretrain_real``): reading every alert of
a few real files except held-back objects, a two-batch VAE, and the latent classifier on it."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from stampnet.evaluation.kshot import object_split
from stampnet.evaluation.pretrain_real import (
    array_stream,
    latent_scores,
    pretrain_vae,
    read_real_stamps,
    vae_diagnostics,
)
from stampnet.evaluation.real_sample import load_real_sample
from tests.test_transfer import few_rows


@pytest.fixture(scope="module")
def rows(ztf_dir):
    return few_rows(ztf_dir)


@pytest.fixture(scope="module")
def small_labels(ztf_dir, rows, tmp_path_factory):
    """labels.csv rows (labelled or not) of the small files holding the few labelled alerts."""
    files = {row["file"].split(";")[0] for row in rows}
    everything = list(csv.DictReader(open(ztf_dir / "labels.csv", newline="")))
    kept = [row for row in everything if row["file"].split(";")[0] in files]
    path = tmp_path_factory.mktemp("pretrain") / "labels.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    return path, kept


def test_every_alert_of_the_files_is_read_once_except_held_back_objects(ztf_dir, small_labels):
    path, kept = small_labels
    excluded = sorted({row["objectId"] for row in kept})[:2]
    stamps = read_real_stamps(ztf_dir, exclude_objects=excluded, labels_csv=path)
    expected = {row["candid"] for row in kept if row["objectId"] not in excluded}
    assert len(stamps["stamps"]) == len(expected)
    assert not set(stamps["object_ids"].tolist()) & set(excluded)
    assert stamps["stamps"].shape[1:] == (63, 63, 3) == stamps["stamp_mask"].shape[1:]
    with pytest.raises(ValueError, match="left outside"):
        everyone = {row["objectId"] for row in kept}
        read_real_stamps(ztf_dir, exclude_objects=everyone, labels_csv=path)


def test_latent_classifier_on_a_vae_pretrained_on_real_stamps(ztf_dir, rows, small_labels):
    sample = load_real_sample(ztf_dir, candids=[int(row["candid"]) for row in rows])
    pool, held_out = object_split(sample)
    stamps = read_real_stamps(
        ztf_dir, exclude_objects=set(sample.object_ids[held_out]), labels_csv=small_labels[0]
    )
    vae = pretrain_vae(array_stream(stamps, batch_size=8), epochs=1, steps_per_epoch=2)
    assert np.isfinite(vae.final_losses["loss"])
    assert len(vae.loss_history["elbo_loss"]) == 1
    diagnostics = vae_diagnostics(vae, sample.inputs((), held_out), batch_size=4)
    assert diagnostics["latent_dim"] == 16 and 0 <= diagnostics["active_units"] <= 16
    assert diagnostics["mse_ratio_to_mean_stamp"] > 0 and diagnostics["valid_pixels"] > 0
    result = latent_scores(vae.encoder, sample, pool, held_out, epochs=1, batch_size=8)
    assert result["num_examples"] == held_out.size
    assert 0.0 <= result["accuracy"] <= 1.0 and np.isfinite(result["macro_f1"])
    assert vae.encoder.trainable is False  # the classifier froze it
