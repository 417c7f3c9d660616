"""Serialisable Keras layers shared by the stampnet models."""

from stampnet.layers.augmentation import StampAugmentation
from stampnet.layers.latent import GaussianMixturePrior, Sampling
from stampnet.layers.preprocessing import FeatureNormalization, StampPreprocessing
from stampnet.layers.rotation import CyclicAveragePooling, CyclicConcatenation, RotationStack
from stampnet.layers.sequence import (
    DetectionFeatureEncoding,
    DetectionMask,
    FoldedTimeDistributed,
    MaskedPooling,
    RepeatOverTime,
    ZeroPadding,
)

__all__ = [
    "CyclicAveragePooling",
    "CyclicConcatenation",
    "DetectionFeatureEncoding",
    "DetectionMask",
    "FeatureNormalization",
    "FoldedTimeDistributed",
    "GaussianMixturePrior",
    "MaskedPooling",
    "RepeatOverTime",
    "RotationStack",
    "Sampling",
    "StampAugmentation",
    "StampPreprocessing",
    "ZeroPadding",
]
