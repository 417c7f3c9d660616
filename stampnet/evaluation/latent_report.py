"""What an autoencoder run learnt (issue #5): reconstruction against the mean stamp, active latent
units, clustering of the latent space, and classification from it against gradient boosting.

    python -m stampnet.evaluation.latent_report --run runs/vae-... [--classifier runs/latent_...]

writes ``latent_report.json`` and ``reconstructions.png`` into the autoencoder's run folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stampnet.evaluation import clustering
from stampnet.evaluation.embed import _data_dir_of_run, collect_latents
from stampnet.losses import elbo
from stampnet.models.baselines import classification_scores, fit_baselines
from stampnet.models.conv_autoencoder import STAMP_KEYS
from stampnet.models.latent_classifier import load_encoder
from stampnet.saving import load_model


def _dataset(data_dir, split, feature_names, batch_size=256):
    from stampnet.data.pipeline import alert_dataset

    return alert_dataset(
        data_dir,
        split,
        batch_size=batch_size,
        feature_names=feature_names,
        labelled_only=False,
        shuffle=False,
        with_ids=True,
    )


def reconstruction_scores(autoencoder, preprocessing, train_data, test_data) -> dict:
    """Mean masked MSE and BCE per stamp of the model and of the train split's mean stamp."""
    crop = preprocessing.crop_size
    start = (63 - crop) // 2

    def target_and_mask(inputs):
        mask = np.asarray(inputs["stamp_mask"])[:, start : start + crop, start : start + crop]
        return np.asarray(preprocessing(inputs["stamps"], inputs["stamp_mask"])), mask

    total, count = 0.0, 0.0
    for inputs, *_ in train_data:
        target, mask = target_and_mask(inputs)
        total, count = total + (target * mask).sum(0), count + mask.sum(0)
    mean_stamp = (total / np.maximum(count, 1.0)).astype(np.float32)
    losses = {"model_mse": [], "mean_stamp_mse": [], "model_bce": [], "mean_stamp_bce": []}
    for inputs, *_ in test_data:
        target, mask = target_and_mask(inputs)
        outputs = autoencoder({key: inputs[key] for key in STAMP_KEYS}, training=False)
        reconstruction = np.asarray(outputs["reconstruction"])
        baseline = np.broadcast_to(mean_stamp, target.shape)
        for kind in ("mse", "bce"):
            losses[f"model_{kind}"].append(
                elbo.masked_reconstruction_loss(target, reconstruction, mask, kind)
            )
            losses[f"mean_stamp_{kind}"].append(
                elbo.masked_reconstruction_loss(target, baseline, mask, kind)
            )
    scores = {key: float(np.mean(np.concatenate(values))) for key, values in losses.items()}
    scores["mse_ratio_to_mean_stamp"] = scores["model_mse"] / scores["mean_stamp_mse"]
    return scores


def plot_reconstructions(autoencoder, preprocessing, inputs, path: Path, count: int = 8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inputs = {key: np.asarray(inputs[key])[:count] for key in STAMP_KEYS}
    target = np.asarray(preprocessing(inputs["stamps"], inputs["stamp_mask"]))
    reconstruction = np.asarray(autoencoder(inputs, training=False)["reconstruction"])
    count = len(target)
    figure, axes = plt.subplots(6, count, figsize=(1.6 * count, 10), squeeze=False)
    for column in range(count):
        for channel, name in enumerate(("science", "template", "difference")):
            for offset, (images, kind) in enumerate(((target, "input"), (reconstruction, "recon"))):
                axis = axes[2 * channel + offset, column]
                axis.imshow(images[column, :, :, channel], cmap="gray", vmin=0, vmax=1)
                axis.set_xticks([])
                axis.set_yticks([])
                if column == 0:
                    axis.set_ylabel(f"{name}\n{kind}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def latent_report(run_dir, *, data_dir=None, classifier_run=None, feature_names="alerce23"):
    """Computes and writes ``latent_report.json`` (and ``reconstructions.png``) for a run."""
    from stampnet.data.card import load_card

    run_dir = Path(run_dir)
    data_dir = data_dir or _data_dir_of_run(run_dir)
    autoencoder = load_model(run_dir / "model.keras")
    encoder = load_encoder(run_dir)
    preprocessing = encoder.get_layer("preprocessing")
    class_names = list(load_card(data_dir)["class_names"])
    train = collect_latents(encoder, _dataset(data_dir, "train", feature_names))
    test = collect_latents(encoder, _dataset(data_dir, "test", feature_names))
    report = {
        "run": str(run_dir),
        "data_dir": str(data_dir),
        "reconstruction_test": reconstruction_scores(
            autoencoder,
            preprocessing,
            _dataset(data_dir, "train", feature_names),
            _dataset(data_dir, "test", feature_names),
        ),
        "active_units_test": clustering.active_units(test["z_mean"]),
    }
    labelled = test["label"] >= 0
    labels = test["label"][labelled]
    num_classes = len(np.unique(labels))
    report["clustering_test"] = {
        "kmeans": clustering.clustering_scores(
            labels, clustering.cluster_latents(test["z_mean"][labelled], num_classes)
        )
    }
    if any(name == "prior" for name in (layer.name for layer in autoencoder.layers)) or (
        "cluster_probabilities" in autoencoder.output
    ):
        probabilities = []
        for inputs, *_ in _dataset(data_dir, "test", feature_names):
            outputs = autoencoder({key: inputs[key] for key in STAMP_KEYS}, training=False)
            probabilities.append(np.asarray(outputs["cluster_probabilities"]))
        clusters = np.argmax(np.concatenate(probabilities), axis=-1)[labelled]
        report["clustering_test"]["vade_prior"] = clustering.clustering_scores(labels, clusters)
    report["baselines_test"] = fit_baselines(train, test, len(class_names))
    if classifier_run is not None:
        classifier = load_model(Path(classifier_run) / "model.keras")
        predictions = []
        for inputs, *_ in _dataset(data_dir, "test", feature_names):
            keys = [key for key in classifier.input if key in inputs]
            predictions.append(
                np.argmax(classifier.predict_on_batch({k: inputs[k] for k in keys}), -1)
            )
        predictions = np.concatenate(predictions)[labelled]
        report["latent_classifier_test"] = classification_scores(
            labels, predictions, len(class_names)
        )
    report["class_names"] = class_names
    (run_dir / "latent_report.json").write_text(json.dumps(report, indent=2))
    first = next(iter(_dataset(data_dir, "test", feature_names, batch_size=8)))[0]
    plot_reconstructions(autoencoder, preprocessing, first, run_dir / "reconstructions.png")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="autoencoder run folder")
    parser.add_argument("--data", default=None, help="dataset; default: the run's own")
    parser.add_argument("--classifier", default=None, help="latent_classifier run folder")
    parser.add_argument("--features", default="alerce23", help="feature set of the baselines")
    args = parser.parse_args(argv)
    report = latent_report(
        args.run, data_dir=args.data, classifier_run=args.classifier, feature_names=args.features
    )
    print(json.dumps({k: v for k, v in report.items() if k != "active_units_test"}, indent=1))
    active = report["active_units_test"]
    print(f"active units: {active['active_units']} of {active['latent_dim']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
