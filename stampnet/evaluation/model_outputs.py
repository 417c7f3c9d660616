"""What a model returned, read without knowing the model: its role, probabilities, latent means.

Roles: every ``*.keras`` of a run is called once on a batch and sorted by what it returns:
- ``classifier``: probabilities (B, C), or a dict with ``probabilities``;
- ``autoencoder``: a dict with ``reconstruction`` and ``z_mean`` (``StampAutoencoder``);
- ``encoder``: ``[z_mean, z_log_var, ...]``, a dict with ``z_mean``, or a single (B, D) tensor that
  is not a probability vector.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

ROLES = ("classifier", "autoencoder", "encoder")


def role_of(outputs, num_classes: int) -> str:
    """Sorts a model by the outputs it returned for one batch (see the module docstring)."""
    if isinstance(outputs, Mapping):
        if "probabilities" in outputs:
            return "classifier"
        if "reconstruction" in outputs:
            return "autoencoder"
        if "z_mean" in outputs:
            return "encoder"
        raise ValueError(f"Cannot evaluate a model returning a dict with keys {sorted(outputs)}")
    if isinstance(outputs, list | tuple):
        return "encoder"
    values = np.asarray(outputs)
    is_probability = (
        values.ndim == 2
        and values.shape[1] == num_classes
        and np.all(values >= -1e-6)
        and np.allclose(values.sum(axis=1), 1.0, atol=1e-3)
    )
    return "classifier" if is_probability else "encoder"


def class_probabilities(outputs) -> np.ndarray:
    """A classifier's (B, C) probabilities from its outputs (a tensor or a dict)."""
    if isinstance(outputs, Mapping):
        outputs = outputs["probabilities"]
    return np.asarray(outputs, np.float32)


def latent_mean(outputs) -> np.ndarray:
    """z_mean from an encoder's or autoencoder's outputs (dict, list or single tensor)."""
    if isinstance(outputs, Mapping):
        return np.asarray(outputs["z_mean"], np.float32)
    if isinstance(outputs, list | tuple):
        return np.asarray(outputs[0], np.float32)
    return np.asarray(outputs, np.float32)
