"""Runs a run's models over a dataset split (``stampnet.evaluation.loading`` loads both).

What comes out is a ``Collected`` set of plain arrays (labels, probabilities, latent means,
reconstruction errors, ids) that the reports of ``stampnet.evaluation.reports`` turn into
metrics, figures and a report. Batches are streamed: only per-example scalars and vectors are
kept, plus the stamps of a few examples per class for the galleries, so memory does not grow with
the split beyond O(N) small arrays.

Every ``*.keras`` of a run is called once on a batch and sorted by what it returns: its role
(classifier, autoencoder or encoder; ``stampnet.evaluation.model_outputs.role_of``).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from stampnet.evaluation import reconstruction
from stampnet.evaluation.light_curves import LightCurveBaseline
from stampnet.evaluation.loading import model_input_dims
from stampnet.evaluation.model_outputs import class_probabilities, latent_mean, role_of


def truncate_detections(inputs: Mapping, count: int) -> dict:
    """A sequence batch keeping only each object's first ``count`` detections: the later ones
    are zeroed in every per-detection input, exactly as the pipeline pads a shorter object.

    A light curve (days relative to the last detection given) loses its rows after the
    ``count``-th detection, and its days are counted from that detection again.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1 detection, received {count}")
    detection_mask = np.asarray(inputs["detection_mask"])
    keep = np.arange(detection_mask.shape[1]) < count
    truncated = dict(inputs)
    for key in ("stamps", "stamp_mask", "detection_features", "detection_mask"):
        if key in inputs:
            values = np.asarray(inputs[key])
            shape = (1, keep.size) + (1,) * (values.ndim - 2)
            truncated[key] = values * keep.reshape(shape).astype(values.dtype)
    if "light_curve" in inputs:
        available = (detection_mask > 0.5).sum(axis=1)
        days = np.asarray(inputs["detection_features"])[..., -1]  # since the first detection
        rows = np.arange(len(days))
        last = days[rows, np.maximum(available - 1, 0)]
        kept = days[rows, np.maximum(np.minimum(available, count) - 1, 0)]
        shift = (kept - last)[:, None]  # <= 0: how far before the last detection we stop
        light_curve = np.asarray(inputs["light_curve"], np.float32).copy()
        mask = np.asarray(inputs["light_curve_mask"], np.float32).copy()
        mask[light_curve[..., 0] > shift + 1e-4] = 0.0
        light_curve[..., 0] -= shift
        light_curve[mask == 0] = 0.0
        truncated.update(light_curve=light_curve, light_curve_mask=mask)
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
        reconstruction_baseline: autoencoder name -> ``MeanStampBaseline.result()``.
        light_curves: autoencoder name -> ``LightCurveBaseline`` of its light-curve
            reconstruction, for a sequence VAE with the light-curve branch.
        clusters: name -> (N,) the model's own cluster assignment (VaDE), where it has one.
        mistake_stamps: classifier name -> {candid: (stamps, stamp_mask)} of its most confident
            mistakes (for a sequence: the object's last detection used).
        examples: autoencoder name -> {"target", "reconstruction", "labels", "captions"} of a few
            examples per class.
        excluded: dataset class name -> examples dropped because the models do not know the class.
        roles: model name -> role (``role_of``) of every model evaluated, in the run's order (an
            encoder that repeats its autoencoder's latents is left out).
    """

    labels: np.ndarray
    candid: np.ndarray
    object_id: np.ndarray
    probabilities: dict = dataclasses.field(default_factory=dict)
    probabilities_by_detections: dict = dataclasses.field(default_factory=dict)
    num_detections: np.ndarray | None = None
    z_mean: dict = dataclasses.field(default_factory=dict)
    reconstruction_error: dict = dataclasses.field(default_factory=dict)
    reconstruction_baseline: dict = dataclasses.field(default_factory=dict)
    light_curves: dict = dataclasses.field(default_factory=dict)
    clusters: dict = dataclasses.field(default_factory=dict)
    mistake_stamps: dict = dataclasses.field(default_factory=dict)
    examples: dict = dataclasses.field(default_factory=dict)
    excluded: dict = dataclasses.field(default_factory=dict)
    roles: dict = dataclasses.field(default_factory=dict)


def _as_numpy(inputs: Mapping) -> dict:
    return {key: np.asarray(value) for key, value in inputs.items()}


def class_mapping(dataset_classes: Sequence[str], model_classes: Sequence[str]) -> np.ndarray:
    """Dataset label index -> model class index, -1 where the model does not have the class."""
    position = {name: index for index, name in enumerate(model_classes)}
    return np.array([position.get(name, -1) for name in dataset_classes], dtype=np.int64)


@dataclasses.dataclass
class _Batch:
    """One batch, restricted to the examples whose class the models know."""

    inputs: dict
    labels: np.ndarray
    candid: np.ndarray | None  # as the batch carried it, before restriction
    chosen: np.ndarray


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
    shared = defaultdict(list)  # labels, candid, object_id, num_detections
    kept = {field: defaultdict(list) for field in ("probabilities", "by_detections", "z_mean",
                                                   "error", "clusters")}  # fmt: skip
    baselines = defaultdict(reconstruction.MeanStampBaseline)
    light_curves: dict[str, LightCurveBaseline] = {}
    examples: dict[str, dict] = {}
    mistakes: dict[str, list] = {}
    excluded = dict.fromkeys(dataset_classes, 0)

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
        current = _Batch(
            {key: value[chosen] for key, value in inputs.items()},
            mapped[chosen],
            ids.get("candid"),
            chosen,
        )
        shared["labels"].append(current.labels)
        for key in ("candid", "object_id"):
            shared[key].append(_row_ids(ids.get(key), key, chosen))
        if sequences:
            detections = current.inputs["detection_mask"].sum(axis=1).astype(np.int64)
            shared["num_detections"].append(detections)
        outputs = {}
        for name, model in models.items():
            outputs[name] = model(_model_inputs(model, current.inputs), training=False)
            roles.setdefault(name, role_of(outputs[name], len(model_classes)))
        for name, model in models.items():
            role, output = roles[name], outputs[name]
            if role == "encoder" and "autoencoder" in roles.values():
                continue  # a run's encoder.keras repeats the latents of its autoencoder
            if role == "classifier":
                probabilities = class_probabilities(output)
                kept["probabilities"][name].append(probabilities)
                mistakes[name] = _worst_mistakes(mistakes.get(name, []), probabilities, current,
                                                 mistakes_per_model)  # fmt: skip
                if sequences:
                    kept["by_detections"][name].append(_by_detections(model, current.inputs))
                continue
            kept["z_mean"][name].append(latent_mean(output))
            if isinstance(output, Mapping) and "cluster_probabilities" in output:
                kept["clusters"][name].append(np.asarray(output["cluster_probabilities"]).argmax(1))
            if role == "autoencoder":
                model_inputs = _model_inputs(model, current.inputs)
                target, mask = reconstruction.reconstruction_target(model, model_inputs)
                rebuilt = np.asarray(output["reconstruction"])
                kept["error"][name].append(reconstruction.masked_mse(target, rebuilt, mask))
                baselines[name].add(target, rebuilt, mask)
                reconstruction.keep_examples(examples.setdefault(name, {}), current.labels,
                                             target, rebuilt, model_classes,
                                             examples_per_class)  # fmt: skip
                if "light_curve_reconstruction" in output:
                    light_curves.setdefault(name, LightCurveBaseline(model_classes)).add(
                        model_inputs["light_curve"], model_inputs["light_curve_mask"],
                        output["light_curve_reconstruction"], current.labels,
                    )  # fmt: skip
    if not shared["labels"]:
        raise ValueError(
            f"No example of the split has a class the model knows ({list(model_classes)}); "
            f"dataset classes seen and dropped: { {k: v for k, v in excluded.items() if v} }"
        )
    joined = {key: np.concatenate(value) for key, value in shared.items()}
    arrays = {
        field: {name: np.concatenate(parts) for name, parts in by_name.items()}
        for field, by_name in kept.items()
    }
    return Collected(
        labels=joined["labels"],
        candid=joined["candid"],
        object_id=joined["object_id"],
        probabilities=arrays["probabilities"],
        probabilities_by_detections=arrays["by_detections"],
        num_detections=joined.get("num_detections"),
        z_mean=arrays["z_mean"],
        reconstruction_error=arrays["error"],
        reconstruction_baseline={name: value.result() for name, value in baselines.items()},
        light_curves=light_curves,
        clusters=arrays["clusters"],
        mistake_stamps={
            name: {candid: (stamps, mask) for _, candid, stamps, mask in rows}
            for name, rows in mistakes.items()
        },
        examples={name: reconstruction.finish_examples(value) for name, value in examples.items()},
        excluded={name: count for name, count in excluded.items() if count},
        roles={
            name: role
            for name, role in roles.items()
            if not (role == "encoder" and "autoencoder" in roles.values())
        },
    )


def _model_inputs(model, inputs: Mapping) -> dict:
    return {key: inputs[key] for key in model_input_dims(model) or inputs}


def _row_ids(value, key: str, chosen) -> np.ndarray:
    if value is None:
        return np.full(int(chosen.sum()), -1)
    if value.ndim == 2:
        # A sequence: its latest candid (padding is 0) names the object's row, and object ids
        # are repeated per detection or given once.
        value = value.max(axis=1) if key == "candid" else value[:, 0]
    return value[chosen]


def _by_detections(model, inputs: Mapping) -> np.ndarray:
    """(B, T): the class predicted from each object's first 1..T detections."""
    model_inputs = _model_inputs(model, inputs)
    steps = inputs["detection_mask"].shape[1]
    predicted = [
        class_probabilities(model(truncate_detections(model_inputs, count), training=False))
        for count in range(1, steps + 1)
    ]
    return np.stack([probabilities.argmax(1) for probabilities in predicted], axis=1)


def _worst_mistakes(kept, probabilities, batch: _Batch, count) -> list:
    """``kept`` merged with this batch's mistakes: the ``count`` most confident, with stamps."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.nonzero(predicted != batch.labels)[0]
    if count <= 0 or wrong.size == 0:
        return kept
    inputs = batch.inputs
    candids = _row_ids(batch.candid, "candid", batch.chosen)
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
