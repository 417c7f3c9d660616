"""Clustering quality of a latent space: Hungarian-matched accuracy, NMI, ARI, active units."""

from __future__ import annotations

import numpy as np
import pytest

from stampnet.evaluation import clustering


def test_a_relabelled_perfect_clustering_scores_one():
    labels = np.array(["SN", "SN", "AGN", "bogus", "AGN", "bogus"])
    clusters = np.array([2, 2, 0, 1, 0, 1])
    scores = clustering.clustering_scores(labels, clusters)
    assert scores["unsupervised_accuracy"] == 1.0
    assert scores["nmi"] == pytest.approx(1.0) and scores["ari"] == pytest.approx(1.0)
    assert clustering.cluster_class_matching(labels, clusters) == {0: "AGN", 1: "bogus", 2: "SN"}


def test_unsupervised_accuracy_uses_the_best_one_to_one_matching():
    # Cluster 0 holds 3 A and 2 B; cluster 1 holds 2 B. Greedy "majority" would map both to
    # (A, B) anyway; with a third class C only in cluster 0, a one-to-one map must leave C out.
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    clusters = np.array([0, 0, 0, 0, 0, 1, 1, 0])
    assert clustering.unsupervised_accuracy(labels, clusters) == pytest.approx(5 / 8)


def test_more_clusters_than_classes_count_the_unmatched_as_errors():
    labels = np.array([0, 0, 1, 1])
    clusters = np.array([0, 1, 2, 3])
    assert clustering.unsupervised_accuracy(labels, clusters) == pytest.approx(0.5)


def test_mismatched_inputs_are_rejected_with_their_shapes():
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\)"):
        clustering.clustering_scores([0, 1, 1], [0, 1])


def test_active_units_count_dimensions_whose_mean_varies():
    rng = np.random.default_rng(0)
    z_mean = np.stack(
        [rng.normal(size=500), 0.05 * rng.normal(size=500), np.full(500, 3.0)], axis=1
    )
    result = clustering.active_units(z_mean)
    assert result["active_units"] == 1 and result["latent_dim"] == 3
    assert result["variances"][0] == pytest.approx(1.0, abs=0.15)
    with pytest.raises(ValueError, match=r"\(1, 3\)"):
        clustering.active_units(z_mean[:1])


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_separated_blobs_are_recovered(method):
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = np.repeat([0, 1, 2], 50)
    z = centres[labels] + rng.normal(size=(150, 2))
    clusters = clustering.cluster_latents(z, 3, method=method)
    assert clustering.unsupervised_accuracy(labels, clusters) == 1.0
    with pytest.raises(ValueError, match="'spectral'"):
        clustering.cluster_latents(z, 3, method="spectral")
