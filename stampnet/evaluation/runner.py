"""Loads a run (or a bare ``.keras`` model) and runs its models over a dataset split.

What comes out is a ``Collected`` set of plain arrays (labels, probabilities, latent means,
reconstruction errors, ids) that ``stampnet.evaluation.command`` turns into metrics, figures and
a report. Batches are streamed: only per-example scalars and vectors are kept, plus the stamps of
a few examples per class for the galleries, so memory does not grow with the split beyond O(N)
small arrays.

Roles: every ``*.keras`` of a run is called once on a batch and sorted by what it returns:
- ``classifier``: probabilities (B, C), or a dict with ``probabilities``;
- ``autoencoder``: a dict with ``reconstruction`` and ``z_mean`` (``StampAutoencoder``);
- ``encoder``: ``[z_mean, z_log_var, ...]``, a dict with ``z_mean``, or a single (B, D) tensor that
  is not a probability vector.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from stampnet.constants import ALERCE_CLASSES
from stampnet.features import FEATURE_SETS

ROLES = ("classifier", "autoencoder", "encoder")


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
        data_dir: the dataset the run was trained on (None if unknown).
    """

    name: str
    path: Path
    models: dict
    card: dict
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    dataset_kind: str
    data_dir: Path | None


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _model_input_dims(model) -> dict[str, tuple]:
    inputs = model.input if isinstance(model.input, dict) else {}
    return {name: tuple(tensor.shape) for name, tensor in inputs.items()}


def _layers(model):
    """Every layer of ``model``, nested models included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def _recorded(models: Mapping, attribute: str):
    """The first value of ``attribute`` on a layer of ``models`` (self-describing models carry
    their class names in ``ClassProbabilities`` and their features in ``FeatureNormalization``)."""
    for model in models.values():
        for layer in _layers(model):
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
        width = _model_input_dims(model).get("features", (None, 0))[-1]
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
    uses_sequences = any("detection_mask" in _model_input_dims(m) for m in models.values())
    data_dir = (card.get("data") or {}).get("data_dir")
    return LoadedRun(
        name=path.name if path.is_dir() else path.stem,
        path=path,
        models=models,
        card=card,
        class_names=_class_names(card, models),
        feature_names=_feature_names(card, models),
        dataset_kind="sequences" if uses_sequences else "alerts",
        data_dir=Path(data_dir) if data_dir else None,
    )


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


def _single_output(model) -> bool:
    return not isinstance(model.output, list | tuple | dict)


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


def _probabilities(outputs) -> np.ndarray:
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


def truncate_detections(inputs: Mapping, count: int) -> dict:
    """A sequence batch keeping only each object's first ``count`` detections (the rest padded)."""
    keep = np.arange(np.asarray(inputs["detection_mask"]).shape[1]) < count
    truncated = dict(inputs)
    for key in ("stamps", "stamp_mask", "detection_features", "detection_mask"):
        if key in inputs:
            values = np.asarray(inputs[key])
            shape = (1, keep.size) + (1,) * (values.ndim - 2)
            truncated[key] = values * keep.reshape(shape).astype(values.dtype)
    return truncated


@dataclasses.dataclass
class Collected:
    """Per-example arrays of one run on one split (N examples kept after class mapping).

    Args:
        labels: (N,) class index into the run's class names.
        candid, object_id: (N,) ids, when the batches carry them.
        probabilities: classifier name -> (N, C).
        probabilities_by_detections: sequence classifier name -> (N, T): argmax with the first
            1..T detections.
        num_detections: (N,) detections per object (sequences).
        z_mean: encoder/autoencoder name -> (N, D).
        reconstruction_error: autoencoder name -> (N,) masked mean squared error.
        clusters: name -> (N,) the model's own cluster assignment (VaDE), where it has one.
        mistake_stamps: classifier name -> {candid: (stamps, stamp_mask)} of its most confident
            mistakes (for a sequence: the object's last detection used).
        examples: autoencoder name -> {"target", "reconstruction", "labels", "captions"} of a few
            examples per class.
        excluded: dataset class name -> examples dropped because the models do not know the class.
    """

    labels: np.ndarray
    candid: np.ndarray
    object_id: np.ndarray
    probabilities: dict = dataclasses.field(default_factory=dict)
    probabilities_by_detections: dict = dataclasses.field(default_factory=dict)
    num_detections: np.ndarray | None = None
    z_mean: dict = dataclasses.field(default_factory=dict)
    reconstruction_error: dict = dataclasses.field(default_factory=dict)
    clusters: dict = dataclasses.field(default_factory=dict)
    mistake_stamps: dict = dataclasses.field(default_factory=dict)
    examples: dict = dataclasses.field(default_factory=dict)
    excluded: dict = dataclasses.field(default_factory=dict)


def _as_numpy(inputs: Mapping) -> dict:
    return {key: np.asarray(value) for key, value in inputs.items()}


def class_mapping(dataset_classes: Sequence[str], model_classes: Sequence[str]) -> np.ndarray:
    """Dataset label index -> model class index, -1 where the model does not have the class."""
    position = {name: index for index, name in enumerate(model_classes)}
    return np.array([position.get(name, -1) for name in dataset_classes], dtype=np.int64)


def collect(
    models: Mapping,
    batches: Iterable,
    *,
    dataset_classes: Sequence[str],
    model_classes: Sequence[str],
    examples_per_class: int = 2,
    mistakes_per_model: int = 6,
    sequences: bool = False,
) -> Collected:
    """Runs ``models`` over ``batches`` of ``(inputs, label)`` and keeps the arrays to evaluate.

    ``inputs`` may carry ``candid`` and ``object_id`` (``with_ids=True``); they are not passed to
    the models. Labels index ``dataset_classes``; examples of classes that ``model_classes`` lacks
    (e.g. "other" for an ALeRCE model) are dropped and counted in ``Collected.excluded``. The raw
    stamps of each classifier's ``mistakes_per_model`` most confident mistakes are kept as the
    batches stream by, so the galleries need no second pass over the split.
    """
    mapping = class_mapping(dataset_classes, model_classes)
    roles: dict[str, str] = {}
    parts: dict[str, list] = {}
    examples: dict[str, dict] = {}
    mistakes: dict[str, list] = {}
    excluded = dict.fromkeys(dataset_classes, 0)

    def keep(key, value):
        parts.setdefault(key, []).append(value)

    for batch in batches:
        inputs, labels = _as_numpy(batch[0]), np.asarray(batch[1]).astype(np.int64)
        mapped = np.where(labels >= 0, mapping[np.maximum(labels, 0)], -1)
        for name, count in zip(*np.unique(labels[mapped < 0], return_counts=True), strict=True):
            if name >= 0:
                excluded[dataset_classes[name]] += int(count)
        chosen = mapped >= 0
        if not chosen.any():
            continue
        ids = {key: inputs.pop(key) for key in ("candid", "object_id") if key in inputs}
        inputs = {key: value[chosen] for key, value in inputs.items()}
        keep("labels", mapped[chosen])
        for key in ("candid", "object_id"):
            value = ids.get(key)
            if value is not None and value.ndim == 2:
                # A sequence: its latest candid (padding is 0) names the object's row, and
                # object ids are repeated per detection or given once.
                value = value.max(axis=1) if key == "candid" else value[:, 0]
            keep(key, value[chosen] if value is not None else np.full(chosen.sum(), -1))
        if sequences:
            keep("num_detections", inputs["detection_mask"].sum(axis=1).astype(np.int64))
        outputs = {}
        for name, model in models.items():
            model_inputs = {key: inputs[key] for key in _model_input_dims(model) or inputs}
            outputs[name] = model(model_inputs, training=False)
            roles.setdefault(name, role_of(outputs[name], len(model_classes)))
        for name, model in models.items():
            role, output = roles[name], outputs[name]
            if role == "encoder" and "autoencoder" in roles.values():
                continue  # a run's encoder.keras repeats the latents of its autoencoder
            model_inputs = {key: inputs[key] for key in _model_input_dims(model) or inputs}
            if role == "classifier":
                keep(f"probabilities/{name}", _probabilities(output))
                mistakes[name] = _worst_mistakes(
                    mistakes.get(name, []), _probabilities(output), mapped[chosen], inputs,
                    ids.get("candid"), chosen, mistakes_per_model,
                )  # fmt: skip
                if sequences:
                    steps = inputs["detection_mask"].shape[1]
                    by_step = [
                        _probabilities(model(truncate_detections(model_inputs, t), training=False))
                        for t in range(1, steps + 1)
                    ]
                    keep(f"by_detections/{name}", np.stack([p.argmax(1) for p in by_step], 1))
                continue
            keep(f"z_mean/{name}", latent_mean(output))
            if isinstance(output, Mapping) and "cluster_probabilities" in output:
                keep(f"clusters/{name}", np.asarray(output["cluster_probabilities"]).argmax(1))
            if role == "autoencoder":
                target, mask = reconstruction_target(model, model_inputs)
                reconstruction = np.asarray(output["reconstruction"])
                axes = tuple(range(1, target.ndim))
                mask = np.broadcast_to(mask, target.shape)
                error = ((target - reconstruction) ** 2 * mask).sum(axis=axes)
                keep(f"error/{name}", error / np.maximum(mask.sum(axis=axes), 1.0))
                _keep_examples(examples.setdefault(name, {}), mapped[chosen], target,
                               reconstruction, model_classes, examples_per_class)  # fmt: skip
    if "labels" not in parts:
        raise ValueError(
            f"No example of the split has a class the model knows ({list(model_classes)}); "
            f"dataset classes seen and dropped: { {k: v for k, v in excluded.items() if v} }"
        )
    joined = {key: np.concatenate(value) for key, value in parts.items()}

    def group(prefix):
        return {k.split("/", 1)[1]: v for k, v in joined.items() if k.startswith(prefix + "/")}

    return Collected(
        labels=joined["labels"],
        candid=joined["candid"],
        object_id=joined["object_id"],
        probabilities=group("probabilities"),
        probabilities_by_detections=group("by_detections"),
        num_detections=joined.get("num_detections"),
        z_mean=group("z_mean"),
        reconstruction_error=group("error"),
        clusters=group("clusters"),
        mistake_stamps={
            name: {candid: (stamps, mask) for _, candid, stamps, mask in rows}
            for name, rows in mistakes.items()
        },
        examples={name: _finish_examples(value) for name, value in examples.items()},
        excluded={name: count for name, count in excluded.items() if count},
    )


def reconstruction_target(model, inputs: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """What an autoencoder reconstructs: its own preprocessing of the crop, and the crop's mask.

    A run saves the autoencoder as a functional view without ``target_and_mask``; the target is
    then rebuilt from the model's ``StampPreprocessing`` layer, so both use the same settings.
    """
    from stampnet.layers.preprocessing import StampPreprocessing, center_crop_bounds

    if hasattr(model, "target_and_mask"):
        return tuple(np.asarray(value) for value in model.target_and_mask(inputs))
    layer = next((item for item in _layers(model) if isinstance(item, StampPreprocessing)), None)
    if layer is None:
        raise ValueError(f"Autoencoder {model.name!r} has no StampPreprocessing layer to rebuild "
                         "its reconstruction target from")  # fmt: skip
    stamps, stamp_mask = np.asarray(inputs["stamps"]), np.asarray(inputs["stamp_mask"])
    target = StampPreprocessing(layer.crop_size, layer.normalisation)(stamps, stamp_mask)
    start, stop = center_crop_bounds(layer.crop_size, stamps.shape[-2])
    return np.asarray(target), stamp_mask[..., start:stop, start:stop, :].astype(np.float32)


def _keep_examples(store, labels, target, reconstruction, class_names, per_class):
    for index in range(len(labels)):
        name = class_names[labels[index]]
        rows = store.setdefault(name, [])
        if len(rows) < per_class:
            # A sequence autoencoder: show the first detection, which every object has.
            first = (0,) if target.ndim == 5 else ()
            rows.append((target[index][first], reconstruction[index][first]))


def _finish_examples(store: dict) -> dict:
    captions, targets, outputs = [], [], []
    for name, rows in store.items():
        for target, reconstruction in rows:
            captions.append(name)
            targets.append(target)
            outputs.append(reconstruction)
    return {"captions": captions, "target": np.stack(targets), "reconstruction": np.stack(outputs)}


def _row_candids(candid, chosen) -> np.ndarray:
    if candid is None:
        return np.full(int(chosen.sum()), -1)
    candid = candid[chosen]
    return candid.max(axis=1) if candid.ndim == 2 else candid


def _worst_mistakes(kept, probabilities, labels, inputs, candid, chosen, count) -> list:
    """``kept`` merged with this batch's mistakes: the ``count`` most confident, with stamps."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.nonzero(predicted != labels)[0]
    if count <= 0 or wrong.size == 0:
        return kept
    candids = _row_candids(candid, chosen)
    confidence = probabilities[wrong, predicted[wrong]]
    rows = []
    for row, value in zip(wrong, confidence, strict=True):
        stamps, mask = inputs["stamps"][row], inputs["stamp_mask"][row]
        if stamps.ndim == 4:  # a sequence: its last real detection
            last = max(int(inputs["detection_mask"][row].sum()) - 1, 0)
            stamps, mask = stamps[last], mask[last]
        rows.append((float(value), int(candids[row]), stamps.copy(), mask.copy()))
    # A stable sort keeps earlier examples first among equal confidences, as
    # metrics.most_confident_mistakes does.
    return sorted(kept + rows, key=lambda item: -item[0])[:count]


def resolve_data_dir(loaded: LoadedRun, data_dir=None) -> Path:
    """``--data`` if given, else the run's own dataset, else the built-in simulated data."""
    if data_dir is not None:
        return Path(data_dir)
    if loaded.data_dir is not None and loaded.data_dir.exists():
        return loaded.data_dir
    if loaded.path.is_file():
        raise ValueError(
            f"{loaded.path} is a bare .keras file with no record of its dataset: pass --data DIR "
            "(e.g. a dataset built with `stampnet build --source ../shared/data/ztf --labels "
            "../shared/data/ztf/labels.csv`)"
        )
    from stampnet.simulation.builtin import ensure_builtin_dataset

    return Path(ensure_builtin_dataset())


def split_batches(loaded: LoadedRun, data_dir, split: str, card: Mapping, options) -> Iterable:
    """The split as numpy batches ``(inputs with ids, labels)``, unshuffled, labelled only.

    ``split`` may join splits with "+" ("train+validation+test": a model trained elsewhere, such
    as ALeRCE's, can be evaluated on every labelled alert).
    """
    import itertools

    from stampnet.data import pipeline

    common = dict(
        batch_size=options.batch_size,
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
