"""Convolutional variational autoencoder (VAE) of first-alert stamps.

ELBO = masked reconstruction + beta * KL(q(z|x) || N(0, I)), with beta a variable that
``stampnet.training.annealing.KLAnnealing`` ramps (linearly or cyclically) to avoid posterior
collapse (Bowman et al. 2016; Fu et al. 2019).
"""

from __future__ import annotations

import keras

from stampnet.geometry import ZTF, StampGeometry
from stampnet.losses import elbo
from stampnet.models.cae import _output_activation
from stampnet.models.conv_autoencoder import StampAutoencoder, build_decoder, build_encoder


@keras.saving.register_keras_serializable(package="stampnet")
class VariationalAutoencoder(StampAutoencoder):
    """Convolutional VAE: the encoder gives ``[z_mean, z_log_var, z]``; training samples z.

    Kingma & Welling 2014, beta-VAE weighting of Higgins et al. 2017; the training step follows
    keras-io ``examples/generative/vae.py``. Calling the model returns the reconstruction of the
    posterior mean, ``z_mean`` and ``z_log_var`` (deterministic, for serving and evaluation).

    Args: as ``stampnet.models.conv_autoencoder.StampAutoencoder``.

    Example:
        >>> vae = build_vae(latent_dim=16)
        >>> vae.compile(optimizer="adam")
        >>> vae.fit(dataset, callbacks=[KLAnnealing(schedule="cyclical", beta_max=1.0)])
    """

    def regularisation(self, z_mean, z_log_var, z):
        return elbo.gaussian_kl(z_mean, z_log_var)

    def call(self, inputs, training=False):
        z_mean, z_log_var, _ = self.encode(inputs, training=training)
        reconstruction = self.decoder(z_mean, training=training)
        return {"reconstruction": reconstruction, "z_mean": z_mean, "z_log_var": z_log_var}


def build_vae(
    *,
    latent_dim: int = 16,
    crop_size: int = 21,
    normalisation: str = "minmax",
    conv_filters=(32, 64),
    kernel_size: int = 3,
    dense_units: int = 64,
    rotation_invariant: bool = False,
    reconstruction_loss: str = "bce",
    geometry: StampGeometry = ZTF,
    beta: float = 1.0,
    seed: int | None = None,
    model_class=VariationalAutoencoder,
    name: str = "vae",
    **model_kwargs,
):
    """Builds a VAE (or, with ``model_class``, another model of the same encoder/decoder)."""
    shared = dict(latent_dim=latent_dim, crop_size=crop_size, conv_filters=conv_filters)
    encoder = build_encoder(
        **shared,
        normalisation=normalisation,
        kernel_size=kernel_size,
        dense_units=dense_units,
        variational=True,
        rotation_invariant=rotation_invariant,
        geometry=geometry,
        seed=seed,
    )
    decoder = build_decoder(
        **shared,
        dense_units=dense_units,
        output_activation=_output_activation(normalisation),
        num_channels=geometry.num_channels,
    )
    return model_class(
        encoder,
        decoder,
        crop_size=crop_size,
        normalisation=normalisation,
        reconstruction_loss=reconstruction_loss,
        beta=beta,
        name=name,
        **model_kwargs,
    )
