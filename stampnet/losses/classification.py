"""Classification losses of the stamp classifiers.

ALeRCE's stamp classifier (Carrasco-Davis et al. 2021, Sect. 4.2) trains with the cross-entropy
minus beta times the entropy of the predicted distribution: rewarding entropy keeps the network
from becoming over-confident on the small, imbalanced training set, so that its probabilities
stay informative for the classes it confuses.
"""

from __future__ import annotations

import keras
from keras import ops

#: Probabilities are clipped to [EPSILON, 1] before the logarithms (Keras' own epsilon).
EPSILON = 1e-7


def prediction_entropy(probabilities):
    """Entropy (nats) of each predicted distribution, (B, C) -> (B,)."""
    probabilities = ops.convert_to_tensor(probabilities)
    clipped = ops.clip(probabilities, EPSILON, 1.0)
    return -ops.sum(probabilities * ops.log(clipped), axis=-1)


def entropy_regularised_crossentropy(labels, probabilities, beta: float = 0.5, sparse=True):
    """Per-example cross-entropy minus ``beta`` times the entropy of the prediction, (B,).

    Averaged over a batch this is ``CE - beta * mean(H(p))``, the loss of Carrasco-Davis et al.
    (2021) with beta 0.5 (ALeRCE's 2019 model used beta 1.0).

    Args:
        labels: class indices (B,) or (B, 1) when ``sparse``, else one-hot / soft targets (B, C).
        probabilities: predicted class probabilities (B, C), e.g. a softmax output.
        beta: weight of the entropy reward; 0 gives the plain cross-entropy.
        sparse: whether ``labels`` are class indices.
    """
    probabilities = ops.convert_to_tensor(probabilities)
    num_classes = probabilities.shape[-1]
    if sparse:
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        targets = ops.one_hot(labels, num_classes, dtype=probabilities.dtype)
    else:
        targets = ops.cast(labels, probabilities.dtype)
    log_probabilities = ops.log(ops.clip(probabilities, EPSILON, 1.0))
    crossentropy = -ops.sum(targets * log_probabilities, axis=-1)
    return crossentropy - beta * prediction_entropy(probabilities)


@keras.saving.register_keras_serializable(package="stampnet")
class EntropyRegularisedCrossentropy(keras.losses.Loss):
    """``entropy_regularised_crossentropy`` as a serialisable Keras loss (mean over the batch).

    Paper: Carrasco-Davis et al. (2021), "Alert classification for the ALeRCE broker system: the
    real-time stamp classifier", Eq. 3.

    Args:
        beta: weight of the entropy reward (0.5 in the paper).
        sparse: whether targets are class indices (True) or one-hot rows.

    Example:
        >>> model.compile("adam", loss=EntropyRegularisedCrossentropy(beta=0.5))
    """

    def __init__(self, beta: float = 0.5, sparse: bool = True, name="entropy_regularised_ce", **kw):
        super().__init__(name=name, **kw)
        if beta < 0:
            raise ValueError(f"beta must be >= 0, received {beta}")
        self.beta = float(beta)
        self.sparse = bool(sparse)

    def call(self, y_true, y_pred):
        return entropy_regularised_crossentropy(y_true, y_pred, self.beta, self.sparse)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "sparse": self.sparse}
