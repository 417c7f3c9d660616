"""Convolutional autoencoder (CAE) of first-alert stamps: a deterministic latent, no prior.

The reference point of the variational models: same encoder (of the ALeRCE stamp-classifier
family) and decoder, trained on the masked reconstruction alone.
"""

from __future__ import annotations

import keras

from stampnet.geometry import ZTF, StampGeometry
from stampnet.models.conv_autoencoder import StampAutoencoder, build_decoder, build_encoder


@keras.saving.register_keras_serializable(package="stampnet")
class ConvAutoencoder(StampAutoencoder):
    """Deterministic convolutional autoencoder; ``kl_loss`` is reported as 0.

    Masci et al. 2011 (stacked convolutional autoencoders); the encoder follows Carrasco-Davis et
    al. 2021. Args as ``stampnet.models.conv_autoencoder.StampAutoencoder`` (``beta`` unused).

    Example:
        >>> model = build_cae(latent_dim=16, crop_size=21)
        >>> model.compile(optimizer="adam")
        >>> model.fit(alert_dataset(..., labelled_only=False))
    """


def build_cae(
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
    name: str = "cae",
) -> ConvAutoencoder:
    """Builds a CAE whose encoder gives ``[z_mean]`` and decoder reconstructs the crop."""
    shared = dict(latent_dim=latent_dim, crop_size=crop_size, conv_filters=conv_filters)
    encoder = build_encoder(
        **shared,
        normalisation=normalisation,
        kernel_size=kernel_size,
        dense_units=dense_units,
        variational=False,
        rotation_invariant=rotation_invariant,
        geometry=geometry,
    )
    decoder = build_decoder(
        **shared,
        dense_units=dense_units,
        output_activation=_output_activation(normalisation),
        num_channels=geometry.num_channels,
    )
    return ConvAutoencoder(
        encoder,
        decoder,
        crop_size=crop_size,
        normalisation=normalisation,
        reconstruction_loss=reconstruction_loss,
        beta=0.0,
        name=name,
    )


def _output_activation(normalisation: str) -> str:
    # Min-max normalised pixels lie in [0, 1]; other normalisations are unbounded.
    return "sigmoid" if normalisation == "minmax" else "linear"
