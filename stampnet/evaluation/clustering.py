"""How well a latent space separates the classes without being told them.

- ``unsupervised_accuracy``: accuracy after the best one-to-one matching of clusters to classes
  (Hungarian algorithm; Xie et al. 2016, the metric of VaDE and Astorga et al. 2018).
- NMI and ARI from scikit-learn.
- ``active_units``: latent dimensions whose posterior mean varies across the data (Burda et al.
  2016: Cov_x(E_q[z_u]) > 0.01); a collapsed VAE has none.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics

ACTIVE_UNIT_THRESHOLD = 0.01


def _labels_pair(labels, clusters) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).ravel()
    clusters = np.asarray(clusters).ravel()
    if labels.shape != clusters.shape or labels.size == 0:
        raise ValueError(
            "labels and clusters must be non-empty and of the same length, received "
            f"{labels.shape} and {clusters.shape}"
        )
    return labels, clusters


def cluster_class_matching(labels, clusters) -> dict:
    """The cluster -> class map maximising the matched count (one to one; extra clusters map
    to no class and count as errors)."""
    labels, clusters = _labels_pair(labels, clusters)
    classes, label_ids = np.unique(labels, return_inverse=True)
    cluster_ids_unique, cluster_ids = np.unique(clusters, return_inverse=True)
    counts = np.zeros((len(cluster_ids_unique), len(classes)), dtype=np.int64)
    np.add.at(counts, (cluster_ids, label_ids), 1)
    rows, columns = linear_sum_assignment(counts, maximize=True)
    pairs = zip(rows, columns, strict=True)
    return {cluster_ids_unique[row].item(): classes[column].item() for row, column in pairs}


def unsupervised_accuracy(labels, clusters) -> float:
    """max over one-to-one maps m of mean(labels == m(clusters))."""
    labels, clusters = _labels_pair(labels, clusters)
    mapping = cluster_class_matching(labels, clusters)
    matched = np.array([mapping.get(cluster.item(), None) for cluster in clusters], dtype=object)
    return float(np.mean(matched == labels.astype(object)))


def clustering_scores(labels, clusters) -> dict[str, float]:
    """Unsupervised accuracy, NMI and ARI of a clustering against the true labels."""
    labels, clusters = _labels_pair(labels, clusters)
    return {
        "unsupervised_accuracy": unsupervised_accuracy(labels, clusters),
        "nmi": float(metrics.normalized_mutual_info_score(labels, clusters)),
        "ari": float(metrics.adjusted_rand_score(labels, clusters)),
        "num_clusters": int(len(np.unique(clusters))),
        "num_examples": int(len(labels)),
    }


def cluster_latents(z, num_clusters: int, *, method: str = "kmeans", seed: int = 0):
    """Cluster indices of latent vectors (N, D) by k-means or a diagonal Gaussian mixture."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) < num_clusters:
        raise ValueError(
            f"need latent vectors (N, D) with N >= num_clusters={num_clusters}, "
            f"received shape {z.shape}"
        )
    if method == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(num_clusters, n_init=10, random_state=seed).fit_predict(z)
    if method == "gmm":
        from sklearn.mixture import GaussianMixture

        mixture = GaussianMixture(num_clusters, covariance_type="diag", random_state=seed)
        return mixture.fit_predict(z)
    raise ValueError(f"method must be 'kmeans' or 'gmm', received {method!r}")


def active_units(z_mean, threshold: float = ACTIVE_UNIT_THRESHOLD) -> dict:
    """Active latent units: per-dimension variance of the posterior means over the data.

    Args:
        z_mean: (N, D) posterior means of N examples.
        threshold: Burda et al. 2016's 0.01 (for a standard normal prior).

    Returns:
        {"active_units": count, "latent_dim": D, "variances": list of D floats}
    """
    z_mean = np.asarray(z_mean, dtype=np.float64)
    if z_mean.ndim != 2 or len(z_mean) < 2:
        raise ValueError(f"z_mean must be (N >= 2, D), received shape {z_mean.shape}")
    variances = z_mean.var(axis=0)
    return {
        "active_units": int(np.sum(variances > threshold)),
        "latent_dim": int(z_mean.shape[1]),
        "variances": [float(v) for v in variances],
    }
