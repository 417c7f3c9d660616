"""The terms of the evidence lower bound (ELBO) of the stamp autoencoders, as pure functions.

Every function returns one value per example (shape (B,)), so that callers choose how to reduce
(a batch mean in ``train_step``; per-alert values in evaluation). Reconstruction terms sum over
the valid pixels only: a NaN or padded pixel of a stamp carries no information to reconstruct.
"""

from __future__ import annotations

import math

from keras import ops

RECONSTRUCTION_LOSSES = ("bce", "mse")


def masked_reconstruction_loss(target, reconstruction, mask, kind: str = "bce"):
    """Per-example reconstruction loss summed over valid pixels, (B,).

    Args:
        target: preprocessed stamps (B, H, W, C); in [0, 1] for ``kind="bce"``.
        reconstruction: decoder output of the same shape.
        mask: (B, H, W, C), 1 where the pixel is valid, 0 where it must not count.
        kind: "bce" (Bernoulli likelihood of min-max normalised pixels, as keras-io's VAE) or
            "mse" (Gaussian likelihood with unit variance, up to constants and a factor 2).
    """
    if kind not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"kind must be one of {RECONSTRUCTION_LOSSES}, received {kind!r}")
    mask = ops.cast(mask, reconstruction.dtype)
    if kind == "bce":
        # Clipping keeps log() finite when a sigmoid saturates.
        clipped = ops.clip(reconstruction, 1e-7, 1.0 - 1e-7)
        per_pixel = -(target * ops.log(clipped) + (1.0 - target) * ops.log(1.0 - clipped))
    else:
        per_pixel = ops.square(target - reconstruction)
    return ops.sum(per_pixel * mask, axis=(1, 2, 3))


def gaussian_kl_per_dimension(z_mean, z_log_var):
    """KL(N(mu, sigma^2) || N(0, 1)) for every latent dimension, (B, D)."""
    return -0.5 * (1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))


def gaussian_kl(z_mean, z_log_var):
    """KL(q(z|x) || N(0, I)) per example, (B,) (Kingma & Welling 2014, appendix B)."""
    return ops.sum(gaussian_kl_per_dimension(z_mean, z_log_var), axis=-1)


def mixture_responsibilities(z, logits, means, log_vars):
    """p(c|z) for a diagonal Gaussian mixture prior, (B, K)."""
    z = ops.expand_dims(z, 1)
    log_normal = -0.5 * ops.sum(
        math.log(2.0 * math.pi) + log_vars + ops.square(z - means) / ops.exp(log_vars), axis=-1
    )
    return ops.softmax(ops.log_softmax(logits) + log_normal, axis=-1)


def mixture_kl(z_mean, z_log_var, responsibilities, logits, means, log_vars):
    """The VaDE regulariser per example, (B,): the negative ELBO minus the reconstruction term.

    Jiang et al. 2017, eq. 13 with gamma = ``responsibilities`` ~ q(c|x):
    E_q[log q(z|x) + log q(c|x) - log p(z|c) - log p(c)], with q(z|x) = N(z_mean, exp(z_log_var))
    and p(z|c) = N(means_c, exp(log_vars_c)). The log(2 pi) terms of q(z|x) and p(z|c) cancel.

    Args:
        z_mean, z_log_var: (B, D) posterior parameters.
        responsibilities: (B, K) gamma = p(c|z) at a posterior sample.
        logits: (K,) unnormalised log mixture weights.
        means, log_vars: (K, D) component parameters.
    """
    mean = ops.expand_dims(z_mean, 1)  # (B, 1, D)
    log_var = ops.expand_dims(z_log_var, 1)
    # E_q[-log p(z|c)] for every component, without the log(2 pi) term: (B, K).
    cross_entropy = 0.5 * ops.sum(
        log_vars + (ops.exp(log_var) + ops.square(mean - means)) / ops.exp(log_vars), axis=-1
    )
    log_weights = ops.log_softmax(logits)
    gamma = responsibilities
    log_gamma = ops.log(ops.maximum(gamma, 1e-10))
    expected_prior = ops.sum(gamma * (cross_entropy - log_weights + log_gamma), axis=-1)
    # E_q[log q(z|x)] without the log(2 pi) term: the negative entropy of the posterior.
    negative_entropy = -0.5 * ops.sum(1.0 + z_log_var, axis=-1)
    return expected_prior + negative_entropy
