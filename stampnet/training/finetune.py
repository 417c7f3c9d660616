"""Fine-tuning: ``train.py --init MODEL.keras|RUN_DIR`` and ``--freeze trunk``.

Any model can start from any saved stampnet model (an ALeRCE import, an earlier run of another
kind) whose stamps are those of the data: weights move layer by layer where the layer NAME and
every weight SHAPE agree, the names being shared on purpose (``stampnet.models.trunk``:
``conv_1`` ... ``conv_5`` in the stamp classifier, Deep-HiTS, the autoencoders and the sequence
models; ``dense_1``, ``dense_2``, ``output_logits`` in the classifiers). Layers that would load
but mean something else are left alone: the output layer when the classes differ, the feature
batch normalisation when the features differ or read a missing catalogue match otherwise. What
was loaded and what was not, and why, is printed and recorded in the run's model card.

A source built for other stamps (size, channel names, or the channels the model uses) is refused
with what differs (``stampnet.compat``): its convolutions would read the wrong images.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import keras

from stampnet import compat
from stampnet.models.trunk import TRUNK_LAYERS

#: Layers whose weights depend on the class set / the feature set, not only on their shapes.
CLASS_LAYERS = ("output_logits", "probabilities")
FEATURE_LAYERS = ("batchnorm_features",)


@dataclasses.dataclass
class InitReport:
    """What ``initialise`` did: ``loaded`` layer names, ``not_loaded`` name -> reason."""

    source: str
    loaded: list[str]
    not_loaded: dict[str, str]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        lines = [f"--init {self.source}: {len(self.loaded)} layers loaded: {self.loaded}"]
        if self.not_loaded:
            reasons = "; ".join(f"{name} ({why})" for name, why in self.not_loaded.items())
            lines.append(f"  not loaded (trained from their initial values): {reasons}")
        return "\n".join(lines)


def layers_with_weights(model) -> Iterator[keras.layers.Layer]:
    """Leaf layers holding weights, nested models and wrappers (TimeDistributed) included."""
    seen = set()

    def walk(layer):
        children = list(getattr(layer, "layers", []) or [])
        inner = getattr(layer, "layer", None)
        if inner is not None:
            children.append(inner)
        if not children:
            if layer.weights and id(layer) not in seen:
                seen.add(id(layer))
                yield layer
            return
        for child in children:
            yield from walk(child)

    for layer in getattr(model, "layers", []):
        yield from walk(layer)


def load_source(path: str | Path) -> tuple[keras.Model, dict, Path]:
    """The model to start from and its run's model card ({} for a bare .keras file)."""
    from stampnet.saving import load_model

    path = Path(path)
    if path.is_dir():
        card_file = path / "model_card.json"
        card = json.loads(card_file.read_text()) if card_file.is_file() else {}
        path = path / "model.keras"
    else:
        card = {}
    if not path.is_file():
        raise ValueError(
            f"--init {path}: no saved model there; pass a .keras file (e.g. from "
            "`stampnet import-alerce`) or a run folder holding model.keras"
        )
    return load_model(path), card, path


def initialise(
    target: keras.Model,
    source: keras.Model,
    *,
    target_record: compat.ModelRecord,
    source_record: compat.ModelRecord,
    source_name: str = "the source model",
) -> InitReport:
    """Copies ``source``'s weights into ``target`` where layer names and weight shapes agree.

    Raises ``ValueError`` naming what differs when the two models take other stamps or use
    other channels; class or feature differences only keep the layers that depend on them.
    """
    _check_same_stamps(target_record, source_record, source_name)
    by_name: dict[str, list] = {}
    for layer in layers_with_weights(source):
        by_name.setdefault(layer.name, []).append(layer)
    skip = {}
    if target_record.class_names != source_record.class_names:
        reason = f"classes {list(source_record.class_names)} vs {list(target_record.class_names)}"
        skip.update(dict.fromkeys(CLASS_LAYERS, reason))
    if target_record.feature_names != source_record.feature_names:
        reason = (
            f"features {list(source_record.feature_names)} vs {list(target_record.feature_names)}"
        )
        skip.update(dict.fromkeys(FEATURE_LAYERS, reason))
    elif target_record.no_match != source_record.no_match:
        reason = (
            f"a missing catalogue match read as {source_record.no_match} vs "
            f"{target_record.no_match} (--no-match-as)"
        )
        skip.update(dict.fromkeys(FEATURE_LAYERS, reason))
    loaded, not_loaded = [], {}
    for layer in layers_with_weights(target):
        candidates = by_name.get(layer.name, [])
        shapes = [tuple(weight.shape) for weight in layer.weights]
        if layer.name in skip:
            not_loaded[layer.name] = skip[layer.name]
        elif not candidates:
            not_loaded[layer.name] = "no layer of this name in the source"
        elif len(candidates) > 1:
            not_loaded[layer.name] = f"{len(candidates)} layers of this name in the source"
        elif [tuple(w.shape) for w in candidates[0].weights] != shapes:
            theirs = [tuple(w.shape) for w in candidates[0].weights]
            not_loaded[layer.name] = f"weight shapes {theirs} in the source vs {shapes}"
        else:
            layer.set_weights(candidates[0].get_weights())
            loaded.append(layer.name)
    return InitReport(source=source_name, loaded=loaded, not_loaded=not_loaded)


def _check_same_stamps(target: compat.ModelRecord, source: compat.ModelRecord, name: str):
    found = source.geometry.differences(target.geometry)
    if source.channels != target.channels:
        found.append(f"channels used {list(source.channels)} vs {list(target.channels)}")
    if found:
        raise ValueError(
            f"--init {name} was built for other stamps than this model and its data: "
            f"{'; '.join(found)} (the source first). Start from a model of the same stamps "
            "and channels, or train without --init."
        )


def initialise_from(
    target: keras.Model, path: str | Path, data_card: Mapping, *, target_record=None
) -> InitReport:
    """``--init PATH`` for ``target`` (built for the data of ``data_card``): checks the source
    against the data (``stampnet.compat``), loads what matches and prints the report."""
    source, source_card, source_path = load_source(path)
    source_record = compat.model_record(source, source_card)
    data = compat.DataRecord.from_card(data_card)
    compat.check(
        dataclasses.replace(source_record, feature_names=()),
        data,
        what=f"--init {source_path}",
        against="the training data",
        classes="ignore",
    )
    target_record = target_record or compat.model_record(target, data_card)
    report = initialise(
        target,
        source,
        target_record=target_record,
        source_record=source_record,
        source_name=str(source_path),
    )
    if not report.loaded:
        raise ValueError(
            f"--init {source_path}: no layer of it matches this model by name and weight shapes "
            f"({report.not_loaded})"
        )
    print(report.summary())
    return report


def freeze(model: keras.Model, part: str) -> list[str]:
    """``--freeze trunk``: makes the convolutional trunk's layers untrainable; their names."""
    if part == "none":
        return []
    if part != "trunk":
        raise ValueError(f"--freeze must be 'trunk' or 'none', received {part!r}")
    frozen = []
    for layer in layers_with_weights(model):
        if layer.name in TRUNK_LAYERS:
            layer.trainable = False
            frozen.append(layer.name)
    if not frozen:
        raise ValueError(f"--freeze trunk: model {model.name!r} has no trunk layer {TRUNK_LAYERS}")
    print(f"--freeze trunk: {len(frozen)} layers kept fixed: {frozen}")
    return frozen
