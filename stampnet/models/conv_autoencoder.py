"""Encoder and decoder builders, and the training step, shared by the first-alert autoencoders.

The encoder is of the family of the ALeRCE stamp-classifier trunk (Carrasco-Davis et al. 2021):
zero-pad, Conv 4x4 valid, Conv 3x3, max-pool, three Conv 3x3, max-pool, dense; the decoder mirrors
it with transposed convolutions back to the crop size. Both are functional models; only the
autoencoder wrapping them is a subclass, because its training step (a masked reconstruction of the
preprocessed inputs plus a latent regulariser) is not a plain ``fit()`` against labels.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from stampnet.geometry import ZTF, StampGeometry
from stampnet.layers.latent import Sampling
from stampnet.layers.preprocessing import StampPreprocessing, center_crop_bounds
from stampnet.layers.rotation import CyclicAveragePooling, RotationStack
from stampnet.losses import elbo
from stampnet.models.trunk import apply_conv_trunk

STAMP_KEYS = ("stamps", "stamp_mask")


def stamp_inputs(geometry: StampGeometry = ZTF) -> dict:
    """``{"stamps", "stamp_mask"}`` Keras inputs of the geometry's (H, W, C)."""
    return {key: keras.Input(geometry.shape, name=key) for key in STAMP_KEYS}


def inputs_like(model: keras.Model) -> dict:
    """Fresh Keras inputs of the same names and shapes as ``model``'s dict inputs."""
    return {key: keras.Input(tensor.shape[1:], name=key) for key, tensor in model.input.items()}


def build_conv_trunk(image_shape, conv_filters=(32, 64), kernel_size=3, name="conv_trunk"):
    """The stamp classifier's convolutional trunk (``stampnet.models.trunk``) as a model:
    images (B, H, W, C) -> flat features, with configurable widths so test models stay tiny."""
    images = keras.Input(image_shape, name="images")
    features = apply_conv_trunk(images, conv_filters=tuple(conv_filters), kernel_size=kernel_size)
    return keras.Model(images, features, name=name)


def build_encoder(
    *,
    latent_dim: int = 16,
    crop_size: int = 21,
    normalisation: str = "minmax",
    conv_filters=(32, 64),
    kernel_size: int = 3,
    dense_units: int = 64,
    variational: bool = True,
    rotation_invariant: bool = False,
    seed: int | None = None,
    geometry: StampGeometry = ZTF,
    name: str = "encoder",
) -> keras.Model:
    """Raw stamps -> ``[z_mean, z_log_var, z]`` if variational, else ``[z_mean]``.

    With ``rotation_invariant`` the trunk and hidden layer see the four rot90 copies of the crop
    and their outputs are averaged (cyclic pooling, Dieleman et al. 2015), so z does not depend on
    the stamp's orientation (the decoder then cannot know it either: expect blurrier
    reconstructions of asymmetric stamps). ``geometry``: the input stamps' size and channels.
    """
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, received {latent_dim}")
    center_crop_bounds(crop_size, geometry.size)
    inputs = stamp_inputs(geometry)
    images = StampPreprocessing(crop_size, normalisation, geometry.channels, name="preprocessing")(
        inputs["stamps"], inputs["stamp_mask"]
    )
    trunk = build_conv_trunk(images.shape[1:], conv_filters, kernel_size)
    hidden_layer = keras.layers.Dense(dense_units, activation="relu", name="hidden")
    if rotation_invariant:
        stacked = RotationStack(name="rotations")(images)
        hidden = CyclicAveragePooling(name="cyclic_pooling")(hidden_layer(trunk(stacked)))
    else:
        hidden = hidden_layer(trunk(images))
    z_mean = keras.layers.Dense(latent_dim, name="z_mean")(hidden)
    if not variational:
        return keras.Model(inputs, [z_mean], name=name)
    # Zero-initialised log-variance: the posterior starts at unit variance, the prior's scale.
    z_log_var = keras.layers.Dense(latent_dim, kernel_initializer="zeros", name="z_log_var")(hidden)
    z = Sampling(seed=seed, name="z")([z_mean, z_log_var])
    return keras.Model(inputs, [z_mean, z_log_var, z], name=name)


def batch_mean(values):
    """Mean over the batch, 0 for an empty one (a replica's share of a short last batch)."""
    count = ops.maximum(ops.cast(ops.shape(values)[0], "float32"), 1.0)
    return ops.sum(values) / count


def build_decoder(
    *,
    latent_dim: int = 16,
    crop_size: int = 21,
    conv_filters=(32, 64),
    dense_units: int = 64,
    output_activation: str = "sigmoid",
    num_channels: int = ZTF.num_channels,
    name: str = "decoder",
) -> keras.Model:
    """z (B, D) -> reconstructed preprocessed crop (B, crop, crop, C), mirroring the encoder."""
    first, second = conv_filters
    base = math.ceil(crop_size / 4)
    z = keras.Input((latent_dim,), name="z")
    x = keras.layers.Dense(dense_units, activation="relu")(z)
    x = keras.layers.Dense(base * base * second, activation="relu")(x)
    x = keras.layers.Reshape((base, base, second))(x)
    x = keras.layers.Conv2DTranspose(second, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(second, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2DTranspose(first, 3, strides=2, padding="same", activation="relu")(x)
    excess = 4 * base - crop_size
    x = keras.layers.Cropping2D(((excess // 2, excess - excess // 2),) * 2)(x)
    x = keras.layers.Conv2D(first, 3, padding="same", activation="relu")(x)
    reconstruction = keras.layers.Conv2D(
        num_channels, 3, padding="same", activation=output_activation, name="reconstruction"
    )(x)
    return keras.Model(z, reconstruction, name=name)


class StampAutoencoder(keras.Model):
    """Base of the autoencoders: masked reconstruction + beta * regulariser, with loss trackers.

    After keras-io's ``examples/generative/vae.py``; subclasses define ``regularisation``. Inputs
    are the pipeline's dicts (labels, if any, are ignored); the target is the encoder's own
    preprocessing of the stamps, and invalid pixels do not count in the reconstruction loss.
    Calling the model returns ``reconstruction`` decoded from ``z_mean`` and the latent mean.

    Args:
        encoder: from ``build_encoder`` (its output list gives z_mean first).
        decoder: from ``build_decoder``.
        crop_size, normalisation: must equal the encoder's preprocessing.
        reconstruction_loss: "bce" or "mse" (``stampnet.losses.elbo``).
        beta: initial weight of the regulariser; a ``keras.Variable`` that
            ``stampnet.training.annealing.KLAnnealing`` updates during training.
    """

    def __init__(
        self,
        encoder,
        decoder,
        crop_size: int = 21,
        normalisation: str = "minmax",
        reconstruction_loss: str = "bce",
        beta: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if reconstruction_loss not in elbo.RECONSTRUCTION_LOSSES:
            raise ValueError(
                f"reconstruction_loss must be one of {elbo.RECONSTRUCTION_LOSSES}, "
                f"received {reconstruction_loss!r}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.crop_size = crop_size
        self.normalisation = normalisation
        self.reconstruction_loss = reconstruction_loss
        self.initial_beta = float(beta)
        self.target_preprocessing = StampPreprocessing(crop_size, normalisation, name="target")
        self.beta = keras.Variable(float(beta), trainable=False, name="beta")
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.regularisation_tracker = keras.metrics.Mean(name="kl_loss")
        # reconstruction + KL at beta = 1, the negative ELBO: unlike "loss" it does not grow
        # while annealing raises beta, so early stopping and the best checkpoint can follow it.
        self.elbo_tracker = keras.metrics.Mean(name="elbo_loss")

    @property
    def metrics(self):
        return [
            self.total_loss_tracker,
            self.reconstruction_loss_tracker,
            self.regularisation_tracker,
            self.elbo_tracker,
        ]

    def build(self, input_shape=None):
        # The encoder and decoder are functional models, built when they were made.
        self.built = True

    def encode(self, inputs, training=False):
        """(z_mean, z_log_var, z); a deterministic encoder gives z_log_var = None, z = z_mean."""
        outputs = self.encoder({key: inputs[key] for key in STAMP_KEYS}, training=training)
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        if len(outputs) == 1:
            return outputs[0], None, outputs[0]
        return tuple(outputs[:3])

    def regularisation(self, z_mean, z_log_var, z):
        """Per-example latent regulariser (B,); none for a plain autoencoder."""
        return ops.zeros_like(z_mean[:, 0])

    def call(self, inputs, training=False):
        z_mean, _, _ = self.encode(inputs, training=training)
        return {"reconstruction": self.decoder(z_mean, training=training), "z_mean": z_mean}

    def functional_model(self, name: str | None = None) -> keras.Model:
        """A functional view sharing this model's weights: raw stamps -> ``call``'s outputs.

        Runs save and serve this view (``model.keras``, SavedModel): it reloads without
        custom classes other than stampnet's layers and works with ``keras.Model.export``.
        """
        inputs = inputs_like(self.encoder)
        return keras.Model(inputs, self.call(inputs), name=name or f"{self.name}_inference")

    def target_and_mask(self, inputs):
        """The preprocessed crop to reconstruct and its validity mask."""
        start, stop = center_crop_bounds(self.crop_size, inputs["stamp_mask"].shape[-2])
        mask = ops.cast(inputs["stamp_mask"][:, start:stop, start:stop, :], "float32")
        return self.target_preprocessing(inputs["stamps"], inputs["stamp_mask"]), mask

    def compute_losses(self, inputs, training=False):
        target, mask = self.target_and_mask(inputs)
        z_mean, z_log_var, z = self.encode(inputs, training=training)
        reconstruction = self.decoder(z, training=training)
        per_example = elbo.masked_reconstruction_loss(
            target, reconstruction, mask, self.reconstruction_loss
        )
        reconstruction_loss = batch_mean(per_example)
        regularisation = batch_mean(self.regularisation(z_mean, z_log_var, z))
        total = reconstruction_loss + ops.convert_to_tensor(self.beta) * regularisation
        return total, reconstruction_loss, regularisation, reconstruction_loss + regularisation

    def _update_trackers(self, losses, inputs):
        # Weighted by batch size: a short last batch (or a replica's empty share of it under
        # tf.distribute) counts for what it holds.
        size = ops.cast(ops.shape(inputs["stamps"])[0], "float32")
        for tracker, value in zip(self.metrics, losses, strict=True):
            tracker.update_state(value, sample_weight=size)
        return {tracker.name: tracker.result() for tracker in self.metrics}

    def train_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            losses = self.compute_losses(inputs, training=True)
            # Replicas' gradients are summed (tf.distribute): each contributes its mean / R.
            scaled = losses[0] / tf.distribute.get_strategy().num_replicas_in_sync
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights, strict=True))
        trackers = self._update_trackers(losses, inputs)
        return {**trackers, "beta": ops.convert_to_tensor(self.beta)}

    def test_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        return self._update_trackers(self.compute_losses(inputs, training=False), inputs)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "crop_size": self.crop_size,
            "normalisation": self.normalisation,
            "reconstruction_loss": self.reconstruction_loss,
            "beta": self.initial_beta,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
