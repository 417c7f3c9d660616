"""Is this model for this data? One check for ``stampnet classify``, ``evaluate.py`` and
``train.py --init``.

A saved stampnet model describes itself through its layers: the input shape of ``stamps`` is
the stamp size, ``StampPreprocessing`` records the names of the input channels and the crop,
``ChannelSelection`` the channels it keeps, ``FeatureNormalization`` the metadata features it
reads, ``ClassProbabilities`` the classes it outputs (a run's ``model_card.json`` fills in what a
model has no layer for, e.g. a sequence classifier's classes). A dataset card records the same
of the data (``stamp_shape``, ``channels``, ``class_names``, ``metadata_fields``). ``check``
compares the two and refuses a mismatch with a message that lists every difference, model side
first, so the user sees at once whether to rebuild the data or pick another model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence

from stampnet.features import METADATA_FIELDS
from stampnet.geometry import ZTF, StampGeometry

#: How class sets are compared: "same" (names and order: weights of an output layer move only
#: between models of the same classes), "overlap" (evaluation: classes the model lacks are
#: excluded and counted, but at least one must be shared) or "ignore" (no labels: classify).
CLASS_MODES = ("same", "overlap", "ignore")


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """What a model was built for.

    Args:
        geometry: size and channel names of the stamps it takes.
        channels: the channels it uses (a subset of ``geometry.channels``).
        crop_size: side of its centred crop (None: unknown).
        class_names: its output classes in order (empty: not a classifier, or unknown).
        feature_names: the metadata features it reads, in input order.
        no_match: how it reads a missing catalogue match (``features.NO_MATCH_ENCODINGS``).
    """

    geometry: StampGeometry
    channels: tuple[str, ...]
    crop_size: int | None
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    no_match: str = "clip"

    def to_dict(self) -> dict:
        return {
            **self.geometry.to_dict(),
            "channels_used": list(self.channels),
            "crop_size": self.crop_size,
            "class_names": list(self.class_names),
            "feature_names": list(self.feature_names),
            "no_match": self.no_match if self.feature_names else None,
        }


@dataclasses.dataclass(frozen=True)
class DataRecord:
    """What a dataset holds: its stamps, classes and the metadata fields its examples carry."""

    geometry: StampGeometry
    class_names: tuple[str, ...]
    metadata_fields: tuple[str, ...]

    @classmethod
    def from_card(cls, card: Mapping) -> DataRecord:
        return cls(
            geometry=StampGeometry.from_card(card),
            class_names=tuple(card.get("class_names") or ()),
            metadata_fields=tuple(card.get("metadata_fields") or METADATA_FIELDS),
        )


def _layers(model) -> Iterator:
    """Every layer of ``model``, nested models and wrapped layers (TimeDistributed) included."""
    for layer in getattr(model, "layers", []):
        yield layer
        inner = getattr(layer, "layer", None)
        if inner is not None:
            yield inner
            yield from _layers(inner)
        yield from _layers(layer)


def _first(model, class_name: str):
    return next((layer for layer in _layers(model) if type(layer).__name__ == class_name), None)


def feature_statistics(model):
    """The ``FeatureStats`` a model normalises its metadata features with; None without them."""
    normalisation = _first(model, "FeatureNormalization")
    return None if normalisation is None else normalisation.stats


def _stamp_input_shape(model) -> tuple[int, int, int] | None:
    try:
        inputs = model.input
    except (AttributeError, ValueError):  # a subclassed model never called
        inputs = None
    if isinstance(inputs, Mapping) and "stamps" in inputs:
        return tuple(int(side) for side in inputs["stamps"].shape[-3:])
    encoder = getattr(model, "encoder", None)
    return _stamp_input_shape(encoder) if encoder is not None else None


def model_record(model, card: Mapping | None = None) -> ModelRecord:
    """What ``model`` was built for, read from its layers; ``card`` (a run's model card) fills
    in what no layer records. Models saved before channel names were recorded are ZTF's."""
    card = card or {}
    preprocessing = _first(model, "StampPreprocessing")
    shape = _stamp_input_shape(model)
    names = tuple(getattr(preprocessing, "channels", ()) or card.get("channels") or ZTF.channels)
    if shape is None:
        geometry = StampGeometry.from_dict(card)
    elif len(names) != shape[-1]:
        raise ValueError(
            f"Model {model.name!r} takes stamps of {shape[-1]} channels but records the "
            f"channel names {list(names)}: it cannot be matched against data"
        )
    else:
        geometry = StampGeometry(shape[0], shape[1], names)
    selection = _first(model, "ChannelSelection")
    probabilities = _first(model, "ClassProbabilities")
    normalisation = _first(model, "FeatureNormalization")
    if normalisation is not None:
        feature_names = tuple(normalisation.stats.names)
    else:
        feature_names = tuple(card.get("feature_names") or ())
    return ModelRecord(
        geometry=geometry,
        channels=tuple(selection.channels) if selection is not None else geometry.channels,
        crop_size=getattr(preprocessing, "crop_size", None) or card.get("crop_size"),
        class_names=tuple(
            getattr(probabilities, "class_names", None) or card.get("class_names") or ()
        ),
        feature_names=feature_names,
        no_match=(
            normalisation.stats.no_match
            if normalisation is not None
            else card.get("no_match") or "clip"  # a card from before it was recorded: clip
        ),
    )


def differences(model: ModelRecord, data: DataRecord, *, classes: str = "same") -> list[str]:
    """Every way ``data`` differs from what ``model`` was built for, in words (empty: none)."""
    if classes not in CLASS_MODES:
        raise ValueError(f"classes must be one of {CLASS_MODES}, received {classes!r}")
    found = list(model.geometry.differences(data.geometry))
    missing = [name for name in model.feature_names if name not in data.metadata_fields]
    if missing:
        found.append(f"features {missing} are read by the model but absent from the data")
    if classes == "ignore" or not model.class_names or not data.class_names:
        return found
    if classes == "same" and model.class_names != data.class_names:
        found.append(f"classes {list(model.class_names)} vs {list(data.class_names)}")
    if classes == "overlap" and not set(model.class_names) & set(data.class_names):
        found.append(
            f"no class in common: classes {list(model.class_names)} vs {list(data.class_names)}"
        )
    return found


def check(
    model: ModelRecord,
    data: DataRecord,
    *,
    what: str = "the model",
    against: str = "the data",
    classes: str = "same",
) -> None:
    """Raises ``ValueError`` naming every difference when ``model`` is not for ``data``."""
    found = differences(model, data, classes=classes)
    if found:
        raise ValueError(
            f"{what} does not fit {against}: {'; '.join(found)} ({what} first, {against} "
            "second). Use a model trained on data like this, or rebuild the data for the model."
        )


def data_record_of_stamps(
    shape: Sequence[int], channels: Sequence[str] | None = None, class_names=()
) -> DataRecord:
    """A ``DataRecord`` of a batch of stamps (..., H, W, C), e.g. alerts read by ``classify``;
    without channel names the data are ZTF alerts."""
    shape = tuple(shape)[-3:]
    return DataRecord(
        geometry=StampGeometry(shape[0], shape[1], tuple(channels or ZTF.channels)),
        class_names=tuple(class_names),
        metadata_fields=METADATA_FIELDS,
    )
