"""VAE pre-training on real stamps (``stampnet.evaluation.pretrain_real``): reading every alert of
a few real files except held-back objects, a two-batch VAE, and the latent classifier on it."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from stampnet.evaluation.kshot import object_split
from stampnet.evaluation.pretrain_real import (
    array_stream,
    elbo_change,
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
    # Any change is within a tolerance of 10: it stops at the first epoch it may, the ramp's
    # 5 epochs and the 5 it measures over.
    vae = pretrain_vae(
        array_stream(stamps, batch_size=8), epochs=12, steps_per_epoch=1, tolerance=10.0
    )
    assert np.isfinite(vae.final_losses["loss"])
    assert len(vae.loss_history["elbo_loss"]) == vae.converged_epoch == 10
    diagnostics = vae_diagnostics(vae, sample.inputs((), held_out), batch_size=4)
    assert diagnostics["latent_dim"] == 16 and 0 <= diagnostics["active_units"] <= 16
    assert diagnostics["mse_ratio_to_mean_stamp"] > 0 and diagnostics["valid_pixels"] > 0
    result = latent_scores(vae.encoder, sample, pool, held_out, epochs=1, batch_size=8)
    assert result["num_examples"] == held_out.size
    assert 0.0 <= result["accuracy"] <= 1.0 and np.isfinite(result["macro_f1"])
    assert vae.encoder.trainable is False  # the classifier froze it


def test_elbo_change_is_relative_over_the_window():
    assert elbo_change([200.0, 150.0, 120.0, 110.0], window=2) == pytest.approx(-40 / 150)
    assert elbo_change([1.0, 2.0, 3.0], window=2) == pytest.approx(2.0)
    assert np.isnan(elbo_change([1.0, 2.0], window=2))


def test_summary_table_and_plot_of_the_pretraining_runs(tmp_path):
    from stampnet.evaluation.pretrain_summary import (
        plot_pretraining,
        pretraining_table,
        summarise_pretraining,
    )

    def run(right):  # 10 alerts of two classes, `right` of them on the diagonal
        matrix = [[right // 2, 5 - right // 2], [5 - (right - right // 2), right - right // 2]]
        return {"accuracy": right / 10, "macro_f1": right / 12, "confusion_matrix": matrix}

    def found(ratio, units, converged):
        return {
            "mse_ratio_to_mean_stamp": ratio,
            "active_units": units,
            "epochs": 20,
            "converged_epoch": converged,
        }

    results = {"real_unlabelled": [run(8), run(6)], "builtin": [run(5), run(5)]}
    diagnostics = {
        "real_unlabelled": [found(0.4, 10, 20), found(0.6, 12, None)],
        "builtin": [found(0.9, 3, 20), found(0.9, 5, 20)],
    }
    summary = summarise_pretraining(results, diagnostics)
    real = summary["real_unlabelled"]
    assert real["accuracy_mean"] == pytest.approx(0.7)
    assert real["accuracy_std"] == pytest.approx(0.1)
    assert real["mse_ratio_to_mean_stamp_mean"] == pytest.approx(0.5)
    assert real["active_units_mean"] == 11 and real["converged"] == 1
    low, high = real["accuracy_ci95"]
    assert 0.0 <= low < 0.7 < high <= 1.0
    table = pretraining_table(summary, 10, 2)
    assert "| real_unlabelled | 0.700 +- 0.100 [" in table and "| 1 of 2 |" in table
    assert "| builtin | 0.500 +- 0.000 [" in table and "| 2 of 2 |" in table
    curve = {"elbo_loss": [300.0, 250.0, 240.0]}
    histories = {source: [curve, curve] for source in results}
    path = plot_pretraining(summary, histories, tmp_path / "pretrain.png")
    assert path.stat().st_size > 1000
