"""A saved classifier loaded for inference: the model and what its outputs mean.

``load_classifier`` reads the class names, version and feature names that a stampnet model
carries (its ``probabilities`` layer and ``FeatureNormalization``); ``Classifier`` turns lists of
``Alert`` records into the model's inputs, refusing stamps the model was not built for, and runs
the model. ``stampnet.inference.classify`` streams alert files through it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from stampnet.features import metadata_indices
from stampnet.saving import load_model


@dataclasses.dataclass
class Classifier:
    """A loaded classifier and what its outputs mean.

    Args:
        model: a Keras model taking {"stamps", "stamp_mask"[, "features"]} -> probabilities.
        class_names: output order.
        feature_names: metadata features the model reads (empty for images-only models).
        name, version: recorded in every output row.
    """

    model: object
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    name: str
    version: str

    def __post_init__(self):
        import tensorflow as tf

        self._feature_indices = metadata_indices(self.feature_names)
        self._record = None  # stampnet.compat.ModelRecord, read when first needed (record)
        # One traced graph for every batch size: far faster per batch than model.predict.
        self._forward = tf.function(
            lambda inputs: self.model(inputs, training=False), reduce_retracing=True
        )

    @property
    def record(self):
        """What the model was built for (``stampnet.compat.ModelRecord``), read once."""
        from stampnet import compat

        if self._record is None:
            self._record = compat.model_record(self.model)
        return self._record

    def check(self, alerts: list) -> None:
        """Refuses alerts whose stamps the model was not built for, saying what differs.

        Alerts holding the model's channels among others (a Deep-HiTS-style database with an
        SNR channel, in another order) are classified on the model's channels, picked by name.
        """
        from stampnet import compat

        seen = {}
        for alert in alerts:
            channels = tuple(getattr(alert, "channels", None) or ())
            seen.setdefault((alert.stamps.shape, channels), alert.source)
        for (shape, channels), source in seen.items():
            order = self._channel_order(channels)
            if order is not None:
                shape, channels = (*shape[:2], len(order)), self.record.geometry.channels
            compat.check(
                self.record,
                compat.data_record_of_stamps(shape, channels),
                what=f"model {self.name!r}",
                against=f"the alert {source}",
                classes="ignore",
            )

    def _channel_order(self, channels: tuple[str, ...]) -> list[int] | None:
        """Positions of the model's channels in ``channels`` when they are there in another
        order or among others; None when ``channels`` are the model's (or unknown)."""
        wanted = self.record.geometry.channels
        if not channels or channels == wanted or not set(wanted) <= set(channels):
            return None
        return [channels.index(name) for name in wanted]

    def _stamps(self, alert, key: str) -> np.ndarray:
        values = getattr(alert, key)
        order = self._channel_order(tuple(getattr(alert, "channels", None) or ()))
        return values if order is None else values[..., order]

    def inputs(self, alerts: list) -> dict[str, np.ndarray]:
        """The raw model inputs of a list of ``Alert`` records (checked with ``check``)."""
        self.check(alerts)
        inputs = {
            "stamps": np.stack([self._stamps(alert, "stamps") for alert in alerts]).astype(
                np.float32, copy=False
            ),
            "stamp_mask": np.stack([self._stamps(alert, "stamp_mask") for alert in alerts]).astype(
                np.float32
            ),
        }
        if self.feature_names:
            metadata = np.stack([alert.metadata for alert in alerts])
            inputs["features"] = metadata[:, self._feature_indices].astype(np.float32)
        if self.uses_history:
            from stampnet.data.history import light_curve_batch

            inputs["light_curve"], inputs["light_curve_mask"] = light_curve_batch(alerts)
        return inputs

    @property
    def uses_history(self) -> bool:
        """Whether the model has the light-curve branch (then alerts are read with history)."""
        names = self.model.input if isinstance(getattr(self.model, "input", None), dict) else {}
        return "light_curve" in names

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._forward(inputs))


def load_classifier(model) -> Classifier:
    """A ``Classifier`` from a ``.keras`` path or a Keras model."""

    from stampnet.layers.preprocessing import FeatureNormalization

    if isinstance(model, str | Path):
        model = load_model(model)
    try:
        output_layer = model.get_layer("probabilities")
    except ValueError:
        output_layer = None
    class_names = getattr(output_layer, "class_names", None)
    if not class_names:
        raise ValueError(
            f"Model {model.name!r} does not record its class names: expected a "
            "'probabilities' layer with class_names (stampnet.models.stamp_classifier."
            "ClassProbabilities), as models from train.py and import-alerce have."
        )
    normalisers = [layer for layer in model.layers if isinstance(layer, FeatureNormalization)]
    feature_names = normalisers[0].stats.names if normalisers else ()
    return Classifier(
        model=model,
        class_names=tuple(class_names),
        feature_names=tuple(feature_names),
        name=model.name,
        version=getattr(output_layer, "model_version", ""),
    )
