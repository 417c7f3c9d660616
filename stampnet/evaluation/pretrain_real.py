"""VAE pre-training on the real sample's unlabelled stamps, then the latent classifier.

Most alerts of ``../shared/data/ztf`` carry no ALeRCE class (``unknown``/``other`` in
``labels.csv``) but their stamps are real. ``read_real_stamps`` reads every alert of the sample
(each candid once) except the evaluation objects; ``pretrain_vae`` fits the VAE of
``--model vae`` (same architecture and KL annealing as its preset) on any stream of stamps, the
real ones or the built-in simulated ones; ``latent_scores`` trains the latent classifier
(``stampnet.models.latent_classifier``, images only, frozen encoder) on the labelled training
alerts and scores it on the held-back ones, so that two encoders are compared on the same alerts.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from stampnet.evaluation.real_sample import RealSample

#: The ``--model vae`` preset's architecture (``train.py --model vae --show-config``).
VAE_ARCHITECTURE = dict(
    latent_dim=16,
    crop_size=21,
    normalisation="minmax",
    conv_filters=(32, 64),
    kernel_size=3,
    dense_units=64,
    reconstruction_loss="bce",
)
KL_RAMP_EPOCHS = 5
#: Epochs over which ``elbo_change`` measures convergence.
CONVERGENCE_WINDOW = 5


def read_real_stamps(
    ztf_dir: str | Path,
    exclude_objects: Iterable[str] = (),
    *,
    labels_csv: str | Path | None = None,
) -> dict[str, np.ndarray]:
    """Stamps, masks and objectIds of every alert of the sample outside ``exclude_objects``.

    Reads the files that ``labels_csv`` (default ``ztf_dir/labels.csv``; every alert of the
    sample, labelled or not, has a row) names in its ``file`` column, relative to ``ztf_dir``;
    an alert stored in several files is kept once.

    Raises:
        ValueError: no alert is left.
    """
    from stampnet.data.alert import RejectionLog
    from stampnet.data.readers import iter_alerts

    ztf_dir = Path(ztf_dir)
    labels_csv = Path(labels_csv) if labels_csv else ztf_dir / "labels.csv"
    with open(labels_csv, newline="", encoding="utf-8") as handle:
        files = sorted({row["file"].split(";")[0] for row in csv.DictReader(handle)})
    excluded = set(exclude_objects)
    seen, stamps, masks, object_ids = set(), [], [], []
    sources = [ztf_dir / name for name in files]
    for alert in iter_alerts(sources, rejections=RejectionLog(warn=False)):
        if alert.candid in seen or alert.object_id in excluded:
            continue
        seen.add(alert.candid)
        stamps.append(alert.stamps.astype(np.float32))
        masks.append(alert.stamp_mask.astype(np.float32))
        object_ids.append(alert.object_id)
    if not stamps:
        raise ValueError(
            f"no alert of {labels_csv} is left outside the {len(excluded)} excluded objects"
        )
    return {
        "stamps": np.stack(stamps),
        "stamp_mask": np.stack(masks),
        "object_ids": np.array(object_ids),
    }


def elbo_change(elbo: list[float], window: int = CONVERGENCE_WINDOW) -> float:
    """Relative change of the ELBO loss over the last ``window`` epochs (nan if fewer)."""
    if len(elbo) <= window:
        return float("nan")
    return (elbo[-1] - elbo[-1 - window]) / abs(elbo[-1 - window])


def pretrain_vae(
    dataset,
    *,
    epochs: int,
    steps_per_epoch: int,
    seed: int = 0,
    learning_rate=1e-3,
    tolerance: float | None = None,
):
    """The preset VAE fitted on ``dataset`` (batches of {"stamps", "stamp_mask"}, repeating).

    beta ramps linearly from 0 to 1 over ``KL_RAMP_EPOCHS`` epochs, as ``--kl-annealing linear``.
    With ``tolerance``, training stops before ``epochs`` once the ramp is over and the ELBO loss
    moved by less than ``tolerance`` (relative, either way) over the last ``CONVERGENCE_WINDOW``
    epochs (``elbo_change``); ``vae.converged_epoch`` says when (None: it did not).
    Returns the trained VAE (its ``encoder`` feeds ``latent_scores``).
    """
    import keras

    from stampnet.models.vae import build_vae
    from stampnet.training.annealing import KLAnnealing

    keras.utils.set_random_seed(seed)
    vae = build_vae(**VAE_ARCHITECTURE, beta=0.0, seed=seed)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate))
    annealing = KLAnnealing(
        "linear", beta_max=1.0, ramp_epochs=KL_RAMP_EPOCHS, steps_per_epoch=steps_per_epoch
    )
    elbo, vae.converged_epoch = [], None

    def converged(epoch, logs):
        elbo.append(float(logs["elbo_loss"]))
        after_ramp = epoch + 1 >= KL_RAMP_EPOCHS + CONVERGENCE_WINDOW
        if tolerance is not None and after_ramp and abs(elbo_change(elbo)) < tolerance:
            vae.converged_epoch = epoch + 1
            vae.stop_training = True

    history = vae.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=[annealing, keras.callbacks.LambdaCallback(on_epoch_end=converged)],
        shuffle=False,
        verbose=0,
    )
    vae.final_losses = {key: float(values[-1]) for key, values in history.history.items()}
    vae.loss_history = {
        key: [float(value) for value in values] for key, values in history.history.items()
    }
    return vae


def vae_diagnostics(vae, inputs: dict[str, np.ndarray], batch_size: int = 256) -> dict:
    """Whether a VAE learnt anything, on some stamps (e.g. the held-back evaluation alerts).

    Returns:
        ``MeanStampBaseline.result()`` (pixel MSE and BCE of the reconstruction of the posterior
        mean against the mean stamp of the same alerts; a ratio below 1 beats it) and
        ``active_units`` / ``latent_dim`` (Burda et al. 2016: latent dimensions whose posterior
        mean varies by more than 0.01 across the alerts).
    """
    from stampnet.evaluation.clustering import active_units
    from stampnet.evaluation.reconstruction import MeanStampBaseline

    baseline, z_means = MeanStampBaseline(), []
    for start in range(0, len(inputs["stamps"]), batch_size):
        batch = {key: inputs[key][start : start + batch_size] for key in ("stamps", "stamp_mask")}
        outputs = vae(batch, training=False)
        target, mask = vae.target_and_mask(batch)
        baseline.add(np.asarray(target), np.asarray(outputs["reconstruction"]), np.asarray(mask))
        z_means.append(np.asarray(outputs["z_mean"]))
    units = active_units(np.concatenate(z_means))
    return {
        **baseline.result(),
        "active_units": units["active_units"],
        "latent_dim": units["latent_dim"],
    }


def array_stream(stamps: dict[str, np.ndarray], batch_size: int, seed: int = 0):
    """A shuffled, repeating tf.data stream of {"stamps", "stamp_mask"} batches."""
    import tensorflow as tf

    arrays = {key: stamps[key] for key in ("stamps", "stamp_mask")}
    return (
        tf.data.Dataset.from_tensor_slices(arrays)
        .shuffle(len(arrays["stamps"]), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size)
    )


def latent_scores(
    encoder,
    sample: RealSample,
    train_index: np.ndarray,
    eval_index: np.ndarray,
    *,
    epochs: int = 30,
    batch_size: int = 32,
    seed: int = 0,
    name: str = "latent_classifier",
) -> dict:
    """Latent classifier (frozen encoder, images only) trained on ``train_index``, scored on
    ``eval_index`` with ``evaluate_on_sample``; class weights balance the training alerts."""
    import keras

    from stampnet.evaluation.transfer import evaluate_on_sample
    from stampnet.models.latent_classifier import build_latent_classifier

    keras.utils.set_random_seed(seed)
    model = build_latent_classifier(encoder, class_names=sample.class_names, name=name)
    labels = sample.labels[train_index]
    counts = np.bincount(labels, minlength=len(sample.class_names))
    class_weight = {
        index: float(labels.size / (np.count_nonzero(counts) * count))
        for index, count in enumerate(counts)
        if count
    }
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy()
    )
    model.fit(
        sample.inputs((), train_index),
        labels,
        epochs=epochs,
        batch_size=batch_size,
        class_weight=class_weight,
        shuffle=True,
        verbose=0,
    )
    return evaluate_on_sample(model, sample.subset(eval_index), name=name)
