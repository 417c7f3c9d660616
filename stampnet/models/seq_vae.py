"""Sequence VAE: the first detections of an object -> one latent vector -> every stamp again.

A TimeDistributed conv encoder and a masked LSTM summarise the sequence into q(z|x) = N(z_mean,
exp(z_log_var)); an LSTM decoder, given z and the time and band of each detection, emits one
state per detection, which a TimeDistributed deconvolution turns back into a preprocessed stamp.
The ELBO (Kingma & Welling 2014) counts only valid pixels of real detections, so padding
contributes nothing; the KL weight ``beta`` is annealed by
``stampnet.training.annealing.KLAnnealing`` (Bowman et al. 2016). Sequence autoencoders of this
kind: Srivastava et al. 2015 (LSTM video autoencoders). The encoder and decoder networks are
built in ``stampnet.models.seq_vae_networks``.
"""

from __future__ import annotations

import keras
from keras import ops

from stampnet.geometry import ZTF, StampGeometry
from stampnet.layers.preprocessing import center_crop_bounds
from stampnet.losses import elbo
from stampnet.models.conv_autoencoder import StampAutoencoder, batch_mean
from stampnet.models.lightcurve import (
    LIGHT_CURVE_KEYS,
    build_light_curve_decoder,
    light_curve_target,
)
from stampnet.models.seq_vae_networks import (
    CONDITION_KEYS,
    ENCODER_KEYS,
    build_sequence_decoder,
    build_sequence_encoder,
)


@keras.saving.register_keras_serializable(package="stampnet")
class SequenceVAE(StampAutoencoder):
    """Variational autoencoder of alert sequences with a masked ELBO.

    Training step, loss trackers (loss, reconstruction_loss, kl_loss), the annealed ``beta``
    variable and (de)serialisation come from ``StampAutoencoder``; here the encoder and decoder
    see whole sequences and the reconstruction term sums over the valid pixels of the real
    detections only. Calling the model returns ``{"reconstruction", "z_mean", "z_log_var"}``, the
    reconstruction decoded from the latent mean.

    Args:
        encoder: from ``build_sequence_encoder``.
        decoder: from ``build_sequence_decoder``.
        crop_size, normalisation: must equal the encoder's preprocessing.
        reconstruction_loss: "bce" or "mse".
        beta: initial KL weight (annealed during training).
        light_curve_decoder: from ``lightcurve.build_light_curve_decoder``, or None. With it
            (and an encoder with the light-curve branch) the VAE also reconstructs each light
            curve's scaled flux, a masked squared error summed over the rows with a flux, and
            ``call`` also returns "light_curve_reconstruction" (B, L).
        light_curve_weight: weight of that term against the stamps' (summed over pixels).

    Example:
        >>> vae = SequenceVAE(build_sequence_encoder(), build_sequence_decoder())
        >>> vae.compile(optimizer="adam")
        >>> vae.fit(sequence_dataset(...))
    """

    def __init__(self, encoder, decoder, light_curve_decoder=None, light_curve_weight=1.0, **kw):
        super().__init__(encoder, decoder, **kw)
        self.light_curve_decoder = light_curve_decoder
        self.light_curve_weight = float(light_curve_weight)
        self.light_curve_tracker = keras.metrics.Mean(name="light_curve_loss")
        missing = [key for key in LIGHT_CURVE_KEYS if key not in self.encoder_keys]
        if light_curve_decoder is not None and missing:
            raise ValueError(
                f"A light-curve decoder needs an encoder with the light-curve branch; the "
                f"encoder lacks the inputs {missing} (build it with light_curve_units > 0)"
            )

    @property
    def metrics(self):
        extra = [self.light_curve_tracker] if self.light_curve_decoder is not None else []
        return [*super().metrics, *extra]

    @property
    def encoder_keys(self) -> tuple[str, ...]:
        """The input names the encoder takes (ENCODER_KEYS, + the light curve's if it has them)."""
        return tuple(self.encoder.input) if isinstance(self.encoder.input, dict) else ENCODER_KEYS

    def encode(self, inputs, training=False):
        outputs = self.encoder({key: inputs[key] for key in self.encoder_keys}, training=training)
        return tuple(outputs[:3])

    def decode_light_curve(self, z, inputs, training=False):
        conditions = {key: inputs[key] for key in LIGHT_CURVE_KEYS}
        return self.light_curve_decoder({"z": z, **conditions}, training=training)

    def regularisation(self, z_mean, z_log_var, z):
        return elbo.gaussian_kl(z_mean, z_log_var)

    def decode(self, z, inputs, training=False):
        conditions = {key: inputs[key] for key in CONDITION_KEYS}
        return self.decoder({"z": z, **conditions}, training=training)

    def call(self, inputs, training=False):
        z_mean, z_log_var, _ = self.encode(inputs, training=training)
        reconstruction = self.decode(z_mean, inputs, training)
        outputs = {"reconstruction": reconstruction, "z_mean": z_mean, "z_log_var": z_log_var}
        if self.light_curve_decoder is not None:
            outputs["light_curve_reconstruction"] = self.decode_light_curve(
                z_mean, inputs, training
            )
        return outputs

    def target_and_mask(self, inputs):
        """Preprocessed crops (B, T, c, c, 3) and their weights: valid pixel AND real detection."""
        start, stop = center_crop_bounds(self.crop_size, inputs["stamp_mask"].shape[-2])
        mask = ops.cast(inputs["stamp_mask"][..., start:stop, start:stop, :], "float32")
        detections = ops.cast(inputs["detection_mask"], "float32")
        mask = mask * detections[:, :, None, None, None]
        return self.target_preprocessing(inputs["stamps"], inputs["stamp_mask"]), mask

    def compute_losses(self, inputs, training=False):
        # Only the model's inputs (a pipeline with_ids adds string ids), as tensors.
        inputs = {key: ops.convert_to_tensor(inputs[key]) for key in self.encoder_keys}
        target, mask = self.target_and_mask(inputs)
        z_mean, z_log_var, z = self.encode(inputs, training=training)
        reconstruction = self.decode(z, inputs, training)
        per_sequence = elbo.masked_reconstruction_loss(
            _fold_time(target), _fold_time(reconstruction), _fold_time(mask),
            self.reconstruction_loss,
        )  # fmt: skip
        reconstruction_loss = batch_mean(per_sequence)
        light_curve_loss = None
        if self.light_curve_decoder is not None:
            flux, weight = light_curve_target(inputs["light_curve"], inputs["light_curve_mask"])
            predicted = self.decode_light_curve(z, inputs, training)
            light_curve_loss = batch_mean(ops.sum(ops.square(flux - predicted) * weight, axis=1))
            reconstruction_loss = reconstruction_loss + self.light_curve_weight * light_curve_loss
        regularisation = batch_mean(self.regularisation(z_mean, z_log_var, z))
        total = reconstruction_loss + ops.convert_to_tensor(self.beta) * regularisation
        # The same terms as StampAutoencoder.compute_losses, in its trackers' order; the last
        # is the negative ELBO at beta = 1, which early stopping follows while beta anneals.
        losses = (total, reconstruction_loss, regularisation, reconstruction_loss + regularisation)
        return losses if light_curve_loss is None else (*losses, light_curve_loss)

    def get_config(self):
        config = super().get_config()
        if self.light_curve_decoder is not None:
            config["light_curve_decoder"] = keras.saving.serialize_keras_object(
                self.light_curve_decoder
            )
            config["light_curve_weight"] = self.light_curve_weight
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("light_curve_decoder") is not None:
            config["light_curve_decoder"] = keras.saving.deserialize_keras_object(
                config["light_curve_decoder"]
            )
        return super().from_config(config)

    def functional_model(self, name: str | None = None) -> keras.Model:
        """A functional view sharing this model's weights: raw sequences -> ``call``'s outputs."""
        inputs = {
            key: keras.Input(tensor.shape[1:], name=key)
            for key, tensor in self.encoder.input.items()
        }
        return keras.Model(inputs, self.call(inputs), name=name or f"{self.name}_inference")


def _fold_time(stamps):
    """(B, T, H, W, C) -> (B, T*H, W, C): a per-example sum then covers the whole sequence."""
    shape = ops.shape(stamps)
    return ops.reshape(stamps, (shape[0], shape[1] * shape[2], shape[3], shape[4]))


def build_seq_vae(
    *,
    latent_dim: int = 16,
    crop_size: int = 21,
    normalisation: str = "minmax",
    conv_filters=(16, 32),
    embedding_dim: int = 64,
    units: int = 64,
    bidirectional: bool = False,
    reconstruction_loss: str = "bce",
    beta: float = 1.0,
    seed: int | None = None,
    feature_stats=None,
    stamp_encoder: keras.Model | None = None,
    geometry: StampGeometry = ZTF,
    light_curve_units: int = 0,
    light_curve_weight: float = 10.0,
    latent_skip: bool = True,
    name: str = "seq_vae",
) -> SequenceVAE:
    """A ``SequenceVAE`` with matching encoder and decoder (arguments as in the builders).

    ``light_curve_units > 0``: the encoder reads the light curve too and a light-curve decoder
    of that width reconstructs it (``SequenceVAE``'s ``light_curve_weight``).
    """
    encoder = build_sequence_encoder(
        latent_dim=latent_dim, crop_size=crop_size, normalisation=normalisation,
        conv_filters=conv_filters, embedding_dim=embedding_dim, units=units,
        bidirectional=bidirectional, seed=seed, feature_stats=feature_stats,
        stamp_encoder=stamp_encoder, geometry=geometry, light_curve_units=light_curve_units,
    )  # fmt: skip
    decoder = build_sequence_decoder(
        latent_dim=latent_dim, crop_size=crop_size, conv_filters=conv_filters,
        dense_units=embedding_dim, units=units, num_channels=geometry.num_channels,
        latent_skip=latent_skip,
    )  # fmt: skip
    light_curve_decoder = (
        build_light_curve_decoder(latent_dim=latent_dim, units=light_curve_units)
        if light_curve_units
        else None
    )
    vae = SequenceVAE(
        encoder, decoder, light_curve_decoder, light_curve_weight, crop_size=crop_size,
        normalisation=normalisation, reconstruction_loss=reconstruction_loss, beta=beta, name=name,
    )  # fmt: skip
    # A symbolic call builds the model as Keras expects (fit's BackupAndRestore and export
    # refuse a model never called) and records free T and feature widths for the export.
    vae({key: keras.Input(t.shape[1:], name=key) for key, t in encoder.input.items()})
    return vae
