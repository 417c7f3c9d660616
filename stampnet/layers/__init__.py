"""Serialisable Keras layers shared by the stampnet models."""

from stampnet.layers.preprocessing import FeatureNormalization, StampPreprocessing

__all__ = ["FeatureNormalization", "StampPreprocessing"]
