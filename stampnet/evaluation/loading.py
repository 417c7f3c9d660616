"""Loads a run (or a bare ``.keras`` model) and streams the split it is evaluated on.

A run folder's ``*.keras`` files are loaded with its ``model_card.json``; a model's class names
and features are read from its own layers when it has no card (an ALeRCE import).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from stampnet.constants import ALERCE_CLASSES
from stampnet.features import FEATURE_SETS


@dataclasses.dataclass
class LoadedRun:
    """A run folder (``runs/<model>-<timestamp>/``) or a bare ``.keras`` file, loaded.

    Args:
        name: display name (the folder's or file's name).
        path: the run folder, or the ``.keras`` file.
        models: file stem -> Keras model (``model`` is the run's main export).
        card: ``model_card.json`` (empty for a bare file).
        class_names: the classes of the classifier outputs, in output order.
        feature_names: the metadata features the models read.
        dataset_kind: "alerts" or "sequences".
    """

    name: str
    path: Path
    models: dict
    card: dict
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    dataset_kind: str


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def model_input_dims(model) -> dict[str, tuple]:
    inputs = model.input if isinstance(model.input, dict) else {}
    return {name: tuple(tensor.shape) for name, tensor in inputs.items()}


def layers_of(model):
    """Every layer of ``model``, nested models included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from layers_of(layer)


def _recorded(models: Mapping, attribute: str):
    """The first value of ``attribute`` on a layer of ``models`` (self-describing models carry
    their class names in ``ClassProbabilities`` and their features in ``FeatureNormalization``)."""
    for model in models.values():
        for layer in layers_of(model):
            value = getattr(layer, attribute, None)
            if value is not None:
                return value
    return None


def _feature_names(card: Mapping, models: Mapping) -> tuple[str, ...]:
    names = card.get("feature_names")
    if names is not None:
        return tuple(FEATURE_SETS[names]) if isinstance(names, str) else tuple(names)
    stats = _recorded(models, "stats")
    if stats is not None and hasattr(stats, "names"):
        return tuple(stats.names)
    for model in models.values():
        width = model_input_dims(model).get("features", (None, 0))[-1]
        if width:
            raise ValueError(
                f"Cannot tell which {width} features model {model.name!r} reads: it has no "
                "model_card.json and no FeatureNormalization layer naming them"
            )
    return ()


def _class_names(card: Mapping, models: Mapping) -> tuple[str, ...]:
    # The output layer's own record wins: it is what the probabilities' columns mean.
    names = _recorded(models, "class_names") or card.get("class_names")
    if names:
        return tuple(names)
    widths = {model.output.shape[-1] for model in models.values() if _single_output(model)}
    # An ALeRCE import without ClassProbabilities: five outputs in ALeRCE's order.
    return ALERCE_CLASSES if len(ALERCE_CLASSES) in widths else ()


def load_run(path: str | Path) -> LoadedRun:
    """Loads every ``*.keras`` of a run folder (or one ``.keras`` file) with its card."""
    from stampnet.saving import load_model

    path = Path(path)
    if path.is_file() and path.suffix == ".keras":
        files, card = [path], {}
    elif path.is_dir():
        files = sorted(path.glob("*.keras"), key=lambda file: (file.stem != "model", file.stem))
        card = _read_json(path / "model_card.json")
        if not files:
            raise ValueError(f"Run folder {path} holds no .keras model (expected model.keras)")
    else:
        raise ValueError(f"RUN must be a run folder or a .keras file, received {str(path)!r}")
    models = {file.stem: load_model(file) for file in files}
    uses_sequences = any("detection_mask" in model_input_dims(m) for m in models.values())
    return LoadedRun(
        name=path.name if path.is_dir() else path.stem,
        path=path,
        models=models,
        card=card,
        class_names=_class_names(card, models),
        feature_names=_feature_names(card, models),
        dataset_kind="sequences" if uses_sequences else "alerts",
    )


def _single_output(model) -> bool:
    return not isinstance(model.output, list | tuple | dict)


def split_batches(loaded: LoadedRun, data_dir, split: str, card: Mapping, options) -> Iterable:
    """The split as numpy batches ``(inputs with ids, labels)``, unshuffled, labelled only.

    ``split`` may join splits with "+" ("train+validation+test": a model trained elsewhere, such
    as ALeRCE's, can be evaluated on every labelled alert).
    """
    import itertools

    from stampnet.data import pipeline

    common = dict(
        batch_size=options.batch_size,
        # the stored light-curve history, for models with the light-curve branch
        with_history=any("light_curve" in model_input_dims(m) for m in loaded.models.values()),
        feature_names=loaded.feature_names,
        class_names=tuple(card["class_names"]),
        labelled_only=True,
        shuffle=False,
        with_ids=True,
    )
    datasets = []
    for part in split.split("+"):
        if loaded.dataset_kind == "sequences":
            steps = loaded.card.get("config", {}).get("data", {}).get("max_detections")
            steps = steps or card.get("max_detections")
            datasets.append(
                pipeline.sequence_dataset(data_dir, part, max_detections=steps, **common)
            )
        else:
            datasets.append(pipeline.alert_dataset(data_dir, part, **common))
    dataset = datasets[0]
    for other in datasets[1:]:
        dataset = dataset.concatenate(other)
    batches = (batch[:2] for batch in dataset.as_numpy_iterator())
    if options.max_examples:
        return itertools.islice(batches, -(-options.max_examples // options.batch_size))
    return batches


def output_dir(loaded: LoadedRun, data_dir, split: str, out_dir=None) -> Path:
    """``<run>/evaluation/<dataset>-<split>``; for a bare file, under ``out_dir`` or beside it."""
    leaf = f"{Path(data_dir).name}-{split}"
    if loaded.path.is_dir():
        return loaded.path / "evaluation" / leaf
    base = Path(out_dir) if out_dir else loaded.path.parent
    return base / f"{loaded.path.stem}-evaluation" / leaf


def check_data(loaded: LoadedRun, card: Mapping, data_dir) -> None:
    """Refuses a dataset the run's models were not built for (``stampnet.compat``): other stamp
    size or channels, features it lacks, or no class in common with a classifier (classes a
    classifier does not know are excluded and counted, as before)."""
    from stampnet import compat

    data = compat.DataRecord.from_card(card)
    for name, model in loaded.models.items():
        own = compat.model_record(model)
        record = compat.model_record(model, loaded.card)
        compat.check(
            record,
            data,
            what=f"{loaded.name}/{name}",
            against=f"the dataset {data_dir}",
            classes="overlap" if own.class_names else "ignore",
        )
