"""``--model cae | vae | vade | latent_classifier``: the first-alert autoencoders (issue #5) and the
classifier on their frozen latent space.

The autoencoders train on every alert of the training split, labelled or not, with the masked
reconstruction of the preprocessed crop; the VAE and VaDE add beta * KL, beta annealed by
``stampnet.training.annealing.KLAnnealing`` (``--kl-annealing linear|cyclical|none``,
``--kl-annealing-epochs``). Their early stopping follows ``val_elbo_loss`` (beta = 1), which does
not rise while beta does. Runs export the functional autoencoder view as ``model.keras`` (outputs
``reconstruction``, ``z_mean``[, ``z_log_var``, ``cluster_probabilities``]) and the encoder as
``encoder.keras``; both are SavedModel signatures of kind "encoder".

Options (``--option key=value``): ``reconstruction_loss`` ("bce" or "mse"), ``pretrain_epochs``
(VaDE: epochs with beta = 0 before its mixture prior is fitted to the latent means, default 2),
``hidden_layers`` (latent classifier: number of hidden dense layers, default 2).
"""

from __future__ import annotations

import math

import keras

from stampnet.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from stampnet.training.spec import Bundle, DataInfo, Export, ModelSpec


def _architecture(config: RunConfig, data: DataInfo) -> dict:
    model_config = config.model_config
    return dict(
        latent_dim=model_config.latent_dim,
        crop_size=data.crop_size,
        normalisation=model_config.normalisation,
        conv_filters=(model_config.filters, 2 * model_config.filters),
        kernel_size=model_config.kernel_size,
        dense_units=model_config.dense_units,
        rotation_invariant=model_config.rotation_invariant,
        reconstruction_loss=model_config.option("reconstruction_loss", "bce"),
        geometry=_all_channels(data),
    )


def _all_channels(data: DataInfo):
    """The autoencoders reconstruct every channel of the data: a subset is refused."""
    if data.channels != data.geometry.channels:
        raise ValueError(
            "The autoencoders read every channel of the data "
            f"({','.join(data.geometry.channels)}); received --channels {','.join(data.channels)}"
        )
    return data.geometry


def _steps_per_epoch(config: RunConfig, data: DataInfo) -> int:
    return config.train.steps_per_epoch or max(
        1, math.ceil(data.train_size / config.train.batch_size)
    )


def _annealing(config: RunConfig, data: DataInfo, delay_epochs: float = 0) -> list:
    from stampnet.training.annealing import KLAnnealing

    model_config = config.model_config
    if model_config.kl_annealing == "none" and not delay_epochs:
        return []
    return [
        KLAnnealing(
            model_config.kl_annealing,
            beta_max=model_config.beta,
            ramp_epochs=model_config.kl_annealing_epochs,
            steps_per_epoch=_steps_per_epoch(config, data),
            delay_epochs=delay_epochs,
        )
    ]


def _bundle(model, config: RunConfig, callbacks=(), monitor="val_elbo_loss") -> Bundle:
    model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate))
    exports = {
        "autoencoder": Export(model.functional_model(name=f"{model.name}_autoencoder"), "encoder"),
        "encoder": Export(model.encoder, "encoder"),
    }
    return Bundle(model=model, exports=exports, callbacks=list(callbacks), monitor=monitor)


def build_cae_bundle(config: RunConfig, data: DataInfo) -> Bundle:
    from stampnet.models.cae import build_cae

    return _bundle(build_cae(**_architecture(config, data)), config, monitor="val_loss")


def build_vae_bundle(config: RunConfig, data: DataInfo) -> Bundle:
    from stampnet.models.vae import build_vae

    model = build_vae(
        **_architecture(config, data),
        beta=0.0 if _annealed(config) else config.model_config.beta,
        seed=config.train.seed,
    )
    return _bundle(model, config, _annealing(config, data))


def _annealed(config: RunConfig) -> bool:
    return config.model_config.kl_annealing != "none"


def build_vade_bundle(config: RunConfig, data: DataInfo) -> Bundle:
    from stampnet.data.pipeline import alert_dataset
    from stampnet.models.vade import MixturePriorInitialisation, build_vade

    model_config = config.model_config
    num_clusters = model_config.num_components or max(data.num_classes, 2)
    pretrain_epochs = int(model_config.option("pretrain_epochs", 2))
    model = build_vade(
        **_architecture(config, data),
        num_clusters=num_clusters,
        beta=0.0 if pretrain_epochs or _annealed(config) else model_config.beta,
        seed=config.train.seed,
    )
    callbacks = _annealing(config, data, delay_epochs=pretrain_epochs)
    if pretrain_epochs:
        sample = alert_dataset(
            data.data_dir,
            "train",
            batch_size=config.train.batch_size,
            feature_names=data.feature_names,
            labelled_only=False,
            shuffle=True,
            seed=config.train.seed,
        )
        callbacks.append(
            MixturePriorInitialisation(sample, after_epoch=pretrain_epochs, seed=config.train.seed)
        )
    return _bundle(model, config, callbacks)


def build_latent_classifier_bundle(config: RunConfig, data: DataInfo) -> Bundle:
    from stampnet.models.latent_classifier import build_latent_classifier, load_encoder

    model_config = config.model_config
    if not model_config.encoder_run:
        raise ValueError(
            "latent_classifier needs --encoder RUN, the run folder of a trained cae, vae or vade "
            "(e.g. runs/vae-20260101-120000)"
        )
    from stampnet import compat

    encoder = load_encoder(model_config.encoder_run)
    compat.check(
        compat.model_record(encoder),
        compat.DataRecord.from_card(data.card),
        what=f"the encoder of {model_config.encoder_run}",
        against=f"the data {data.data_dir}",
        classes="ignore",
    )
    classifier = build_latent_classifier(
        encoder,
        class_names=data.class_names,
        feature_stats=data.feature_stats if data.num_features else None,
        hidden_units=(model_config.dense_units,) * int(model_config.option("hidden_layers", 2)),
        dropout_rate=model_config.dropout_rate,
    )
    classifier.compile(
        optimizer=keras.optimizers.Adam(config.train.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return Bundle(model=classifier, exports={"classifier": Export(classifier, "classifier")})


_DATA = DataConfig(augment=False, balance="none", labelled_only=False)
_MODEL = ModelConfig(
    crop_size=21,
    kernel_size=3,
    filters=32,
    dense_units=64,
    latent_dim=16,
    beta=1.0,
    kl_annealing="linear",
    kl_annealing_epochs=5,
    rotation_invariant=False,
)
_TRAIN = TrainConfig(epochs=30, batch_size=64, learning_rate=1e-3, patience=5)


def _autoencoder_spec(name: str, description: str, build) -> ModelSpec:
    """The first-alert autoencoders share their data, model and training presets."""
    return ModelSpec(
        name=name,
        dataset="alerts",
        needs_labels=False,
        description=description,
        build=build,
        data_config=_DATA,
        model_config=_MODEL,
        train_config=_TRAIN,
    )


CAE = _autoencoder_spec(
    "cae", "convolutional autoencoder of the first alert's stamps", build_cae_bundle
)
VAE = _autoencoder_spec(
    "vae", "convolutional VAE of the first alert's stamps (annealed beta * KL)", build_vae_bundle
)
VADE = _autoencoder_spec(
    "vade",
    "VaDE: VAE with a Gaussian-mixture prior, clusters read directly (Jiang 2017)",
    build_vade_bundle,
)
LATENT_CLASSIFIER = ModelSpec(
    name="latent_classifier",
    dataset="alerts",
    needs_labels=True,
    description="classifier on a frozen autoencoder's latent mean + metadata (--encoder RUN)",
    build=build_latent_classifier_bundle,
    data_config=DataConfig(augment=False, balance="oversample"),
    model_config=ModelConfig(dense_units=64, dropout_rate=0.2),
    train_config=TrainConfig(epochs=30, batch_size=64, learning_rate=1e-3, patience=5),
)
