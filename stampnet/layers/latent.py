"""Layers of the latent space: reparameterised sampling and a Gaussian-mixture prior.

Both are used by the first-alert autoencoders (``stampnet.models.vae``, ``stampnet.models.vade``);
the losses they feed are pure functions in ``stampnet.losses.elbo``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from stampnet.losses import elbo


@keras.saving.register_keras_serializable(package="stampnet")
class Sampling(keras.layers.Layer):
    """Draws ``z = z_mean + exp(z_log_var / 2) * eps`` (the reparameterisation trick).

    Kingma & Welling 2014. When not training the layer returns ``z_mean``: a served encoder must
    give the same latent vector for the same alert, and the mean is the posterior's best point.

    Args:
        seed: seed of the layer's own random generator (no global random state).

    Example:
        >>> z = Sampling(seed=0)([z_mean, z_log_var], training=True)
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        z_mean, z_log_var = inputs
        if not training:
            return z_mean
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="stampnet")
class GaussianMixturePrior(keras.layers.Layer):
    """A learnable Gaussian mixture p(z) = sum_c pi_c N(z; mu_c, diag(sigma_c^2)).

    VaDE (Jiang et al. 2017, "Variational Deep Embedding") replaces the VAE's standard normal prior
    by this mixture, so that the latent space is clustered and q(c|x) ~ p(c|z) gives the cluster of
    an alert directly (Astorga et al. 2018 clustered ZTF-like transient candidates this way).
    Called on ``z`` (B, D) it returns the responsibilities p(c|z) (B, K).

    Args:
        num_clusters: number of mixture components K.
        latent_dim: dimension D of the latent space.
        seed: seed of the initial component means.
    """

    def __init__(self, num_clusters: int, latent_dim: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if num_clusters < 1 or latent_dim < 1:
            raise ValueError(
                "num_clusters and latent_dim must be >= 1, received "
                f"num_clusters={num_clusters}, latent_dim={latent_dim}"
            )
        self.num_clusters = num_clusters
        self.latent_dim = latent_dim
        self.seed = seed

    def build(self, input_shape=None):
        # Unconstrained parameters: softmax(logits) = pi and exp(log_var) = sigma^2 stay valid
        # under any gradient step.
        self.logits = self.add_weight(
            shape=(self.num_clusters,), initializer="zeros", name="logits"
        )
        self.means = self.add_weight(
            shape=(self.num_clusters, self.latent_dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
            name="means",
        )
        self.log_vars = self.add_weight(
            shape=(self.num_clusters, self.latent_dim), initializer="zeros", name="log_vars"
        )

    def call(self, z):
        return elbo.mixture_responsibilities(z, self.logits, self.means, self.log_vars)

    def set_parameters(self, weights, means, variances):
        """Sets pi, mu and sigma^2 (e.g. from a GaussianMixture fitted on pretrained latents)."""
        self.logits.assign(np.log(np.maximum(np.asarray(weights, "float32"), 1e-6)))
        self.means.assign(np.asarray(means, "float32"))
        self.log_vars.assign(np.log(np.maximum(np.asarray(variances, "float32"), 1e-6)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_clusters)

    def get_config(self):
        return {
            **super().get_config(),
            "num_clusters": self.num_clusters,
            "latent_dim": self.latent_dim,
            "seed": self.seed,
        }
