"""Variational deep embedding (VaDE): a VAE whose prior is a learnable Gaussian mixture.

The latent space is then clustered by construction and an alert's cluster is read directly as
argmax_c p(c|z_mean) (``predict_clusters``), as Astorga et al. 2018 did for transient candidates.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from stampnet.layers.latent import GaussianMixturePrior
from stampnet.losses import elbo
from stampnet.models.vae import VariationalAutoencoder, build_vae


@keras.saving.register_keras_serializable(package="stampnet")
class VariationalDeepEmbedding(VariationalAutoencoder):
    """VaDE (Jiang et al. 2017): ELBO = masked reconstruction + beta * mixture KL.

    Calling the model adds ``cluster_probabilities`` p(c|z_mean) (B, K) to the VAE's outputs.
    As in the paper, initialise the mixture from a Gaussian mixture fitted to the latent means of
    a briefly pretrained model (``initialise_prior``; ``MixturePriorInitialisation`` does it
    inside ``fit``).

    Args:
        num_clusters: mixture components K.
        seed: seed of the initial component means.
        Other args as ``stampnet.models.conv_autoencoder.StampAutoencoder``.
    """

    def __init__(self, encoder, decoder, num_clusters: int = 5, seed: int | None = None, **kwargs):
        super().__init__(encoder, decoder, **kwargs)
        self.num_clusters = num_clusters
        self.seed = seed
        latent_dim = encoder.outputs[0].shape[-1]
        self.prior = GaussianMixturePrior(num_clusters, latent_dim, seed=seed, name="prior")
        self.prior.build((None, latent_dim))

    def regularisation(self, z_mean, z_log_var, z):
        prior = self.prior
        responsibilities = prior(z)
        return elbo.mixture_kl(
            z_mean, z_log_var, responsibilities, prior.logits, prior.means, prior.log_vars
        )

    def call(self, inputs, training=False):
        outputs = super().call(inputs, training=training)
        outputs["cluster_probabilities"] = self.prior(outputs["z_mean"])
        return outputs

    def predict_clusters(self, inputs, batch_size: int = 256) -> np.ndarray:
        """Cluster index argmax_c p(c|z_mean) of every alert of an input dict or dataset."""
        probabilities = self.predict(inputs, batch_size=batch_size, verbose=0)
        return np.argmax(probabilities["cluster_probabilities"], axis=-1)

    def initialise_prior(self, z_means: np.ndarray, seed: int = 0) -> None:
        """Fits a diagonal Gaussian mixture to latent means (N, D) and copies it into the prior."""
        from sklearn.mixture import GaussianMixture

        z_means = np.asarray(z_means, dtype=np.float64)
        if len(z_means) < self.num_clusters:
            raise ValueError(
                f"initialise_prior needs at least num_clusters={self.num_clusters} latent "
                f"vectors, received {len(z_means)}"
            )
        mixture = GaussianMixture(
            self.num_clusters, covariance_type="diag", reg_covar=1e-4, random_state=seed
        ).fit(z_means)
        self.prior.set_parameters(mixture.weights_, mixture.means_, mixture.covariances_)

    def get_config(self):
        return {**super().get_config(), "num_clusters": self.num_clusters, "seed": self.seed}


class MixturePriorInitialisation(keras.callbacks.Callback):
    """After ``after_epoch`` epochs of pretraining, fits the VaDE prior to the latent means.

    Args:
        dataset: batches of pipeline inputs (labels ignored), e.g. the training split.
        after_epoch: number of epochs after which to initialise (once).
        max_batches: batches of ``dataset`` encoded for the fit.
        seed: seed of the Gaussian mixture fit.
    """

    def __init__(self, dataset, after_epoch: int = 1, max_batches: int = 50, seed: int = 0):
        super().__init__()
        if after_epoch < 1:
            raise ValueError(f"after_epoch must be >= 1, received {after_epoch}")
        self.dataset = dataset
        self.after_epoch = after_epoch
        self.max_batches = max_batches
        self.seed = seed

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 != self.after_epoch:
            return
        z_means = []
        for element in self.dataset.take(self.max_batches):
            inputs = element[0] if isinstance(element, tuple) else element
            z_mean, _, _ = self.model.encode(inputs, training=False)
            z_means.append(ops.convert_to_numpy(z_mean))
        self.model.initialise_prior(np.concatenate(z_means), seed=self.seed)


def build_vade(*, num_clusters: int = 5, seed: int | None = None, name: str = "vade", **kwargs):
    """Builds a VaDE with the VAE's encoder and decoder (keyword args as ``build_vae``)."""
    return build_vae(
        model_class=VariationalDeepEmbedding,
        num_clusters=num_clusters,
        seed=seed,
        name=name,
        **kwargs,
    )
