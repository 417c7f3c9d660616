"""Serialisable Keras layers shared by the stampnet models."""

from stampnet.layers.preprocessing import FeatureNormalization, StampPreprocessing
from stampnet.layers.rotation import CyclicAveragePooling, RotationStack

__all__ = [
    "CyclicAveragePooling",
    "FeatureNormalization",
    "RotationStack",
    "StampPreprocessing",
]
