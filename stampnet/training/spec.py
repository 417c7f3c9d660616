"""The contract between the trainer and a model: ``ModelSpec`` in, ``Bundle`` out.

To add a model, write a module under ``stampnet/training/specs/`` that defines module-level
``ModelSpec`` objects, each named in ``stampnet/training/registry.py`` ("module:ATTRIBUTE")::

    def _build(config: RunConfig, data: DataInfo) -> Bundle:
        classifier = build_my_classifier(
            class_names=data.class_names, feature_stats=data.feature_stats,
            crop_size=config.model_config.crop_size, ...)
        trainable = with_augmentation(classifier, data, seed=config.train.seed)
        trainable.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate),
                          loss=..., metrics=[...])
        return Bundle(model=trainable,
                      exports={"classifier": Export(classifier, "classifier")})

    SPEC = ModelSpec(name="my_model", dataset="alerts", needs_labels=True,
                     description="...", build=_build,
                     model_config=ModelConfig(...), train_config=TrainConfig(...))

The trainer then: reads the dataset card and fills ``DataInfo``; builds the ``tf.data`` pipelines
(``stampnet.data.pipeline.alert_dataset`` or ``sequence_dataset`` after ``ModelSpec.dataset``;
labelled examples only when ``needs_labels``), keeps only the input keys a functional
``Bundle.model`` takes, applies ``Bundle.batch_transform`` to every element; builds a subclassed
model on one batch; fits ``Bundle.model`` with its own callbacks plus ``Bundle.callbacks``,
following ``Bundle.monitor``; restores the best weights; saves the FIRST export's model as
``model.keras`` (the others as ``<name>.keras``) and all exports into one SavedModel
(``stampnet.training.export``); evaluates ``Bundle.model`` on validation/test, and the first
classifier export's accuracy and confusion matrix when labels are needed.

Inputs every model receives are the pipeline dicts of docs/design.md (raw values; preprocessing is
inside the models):
- alerts: ``{"stamps": (B,H,W,C), "stamp_mask": (B,H,W,C), "features": (B,F)}``, (H, W, C)
  the card's geometry (``DataInfo.geometry``; ZTF: 63, 63, 3)
- sequences: the same with a time axis, plus ``"detection_features": (B,T,K)`` and
  ``"detection_mask": (B,T)``.
Export kinds (serving signatures, see ``stampnet.training.export``): ``"classifier"`` and
``"sequence_classifier"`` (the model returns probabilities (B,C)), ``"encoder"`` and
``"sequence_encoder"`` (the model returns ``[z_mean, z_log_var, ...]`` or a dict with those keys).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import keras

from stampnet.features import FeatureStats
from stampnet.geometry import ZTF, StampGeometry
from stampnet.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig

DATASET_KINDS = ("alerts", "sequences")
EXPORT_KINDS = ("classifier", "sequence_classifier", "encoder", "sequence_encoder")
CLASSIFIER_KINDS = ("classifier", "sequence_classifier")


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about the data it is built for (from the dataset card).

    Args:
        data_dir: the built dataset directory.
        card: the dataset card (``stampnet.data.card.load_card``).
        class_names: label-id order of the classes (the card's ``class_names``).
        feature_names: the chosen feature set, in model input order (may be empty).
        feature_stats: train-split statistics of ``feature_names`` (``card.feature_stats_for``).
        crop_size: stamp crop the model should use (``ModelConfig.crop_size``).
        channels: stamps the model should see (``ModelConfig.channels``, else all the card's).
        max_detections: sequences: time steps T of the pipeline (None for alerts).
        detection_feature_names: sequences: the K per-detection inputs (empty for alerts).
        train_size: examples in the training split the pipeline yields (labelled ones when
            labels are needed).
        geometry: size and channel names of the stamps (the card's; ZTF for older cards).
    """

    data_dir: Path
    card: Mapping
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    feature_stats: FeatureStats
    crop_size: int
    channels: tuple[str, ...]
    max_detections: int | None = None
    detection_feature_names: tuple[str, ...] = ()
    train_size: int = 0
    geometry: StampGeometry = ZTF

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)


@dataclasses.dataclass(frozen=True)
class Export:
    """One model to save from a run, and the serving signature it gets.

    Args:
        model: a Keras model taking the pipeline input dict (no augmentation inside).
        kind: one of ``EXPORT_KINDS``.
    """

    model: keras.Model
    kind: str

    def __post_init__(self):
        if self.kind not in EXPORT_KINDS:
            raise ValueError(f"Export kind must be one of {EXPORT_KINDS}, received {self.kind!r}")


@dataclasses.dataclass
class Bundle:
    """What ``ModelSpec.build`` returns.

    Args:
        model: the COMPILED Keras model that ``fit`` trains (optimizer, loss, metrics chosen by
            the spec). It may wrap the exported models with training-only parts (augmentation),
            as long as it shares their weights.
        exports: name -> ``Export``; the first one is the run's main model (``model.keras``,
            SavedModel ``serving_default``). Names become SavedModel signature names.
        callbacks: extra Keras callbacks (e.g. KL annealing).
        batch_transform: optional function applied to every pipeline element with
            ``Dataset.map`` before fit/evaluate, e.g. ``lambda inputs, label: (inputs, inputs)``
            for an autoencoder trained with a plain ``fit``. Pipeline elements are
            ``(inputs, label)`` or ``(inputs, label, sample_weight)`` (balance="weights").
        monitor: the metric early stopping and the best checkpoint follow.
    """

    model: keras.Model
    exports: dict[str, Export]
    callbacks: list[keras.callbacks.Callback] = dataclasses.field(default_factory=list)
    batch_transform: Callable | None = None
    monitor: str = "val_loss"

    def __post_init__(self):
        if not self.exports:
            raise ValueError("Bundle.exports must name at least one model to export, received {}")
        if not getattr(self.model, "compiled", False):
            raise ValueError(
                f"Bundle.model {self.model.name!r} must be compiled by ModelSpec.build"
            )

    @property
    def main_export(self) -> tuple[str, Export]:
        return next(iter(self.exports.items()))

    @property
    def classifier(self) -> Export | None:
        """The first classifier export, used for the test-set accuracy and confusion matrix."""
        return next((e for e in self.exports.values() if e.kind in CLASSIFIER_KINDS), None)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A trainable model: its data, its preset configuration and how to build it.

    Args:
        name: registry name (``--model``).
        dataset: "alerts" (one alert per example) or "sequences" (first N alerts of an object).
        needs_labels: whether training reads labels (classifiers) or not (autoencoders: then
            unlabelled examples are kept).
        description: one line for ``--help``.
        build: ``build(config: RunConfig, data: DataInfo) -> Bundle``.
        data_config, model_config, train_config: the preset; command-line flags override it.
    """

    name: str
    dataset: str
    needs_labels: bool
    description: str
    build: Callable[[RunConfig, DataInfo], Bundle]
    data_config: DataConfig = dataclasses.field(default_factory=DataConfig)
    model_config: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train_config: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.dataset not in DATASET_KINDS:
            raise ValueError(
                f"ModelSpec {self.name!r}: dataset must be one of {DATASET_KINDS}, "
                f"received {self.dataset!r}"
            )

    def preset(self) -> RunConfig:
        """The preset configuration of this model (a fresh copy)."""
        return RunConfig(
            model=self.name,
            data=dataclasses.replace(self.data_config),
            model_config=dataclasses.replace(
                self.model_config, options=dict(self.model_config.options)
            ),
            train=dataclasses.replace(self.train_config),
        )


def with_augmentation(
    model: keras.Model, data: DataInfo, *, enabled: bool = True, seed: int = 0, **augmentation
) -> keras.Model:
    """Wraps ``model`` so that training batches pass through ``StampAugmentation`` first.

    The augmentation acts on ``stamps`` and ``stamp_mask`` jointly and only when ``training``
    is true, so the wrapper shares ``model``'s weights and gives the same outputs at inference;
    exports use ``model`` itself. With ``enabled=False`` the wrapper only passes the inputs on:
    either way the compiled (training) model is a different object from the exported one, so an
    export never carries a training loss that cannot be deserialised.
    """
    inputs = {
        name: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=name)
        for name, tensor in _input_dict(model).items()
    }
    if enabled:
        from stampnet.layers.augmentation import StampAugmentation

        stamps, stamp_mask = StampAugmentation(seed=seed, **augmentation)(
            inputs["stamps"], inputs["stamp_mask"]
        )
        outputs = model({**inputs, "stamps": stamps, "stamp_mask": stamp_mask})
    else:
        outputs = model(dict(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_training")


def _input_dict(model: keras.Model) -> dict:
    inputs = model.inputs
    if isinstance(model.input, dict):
        return dict(model.input)
    return {tensor.name.split(":")[0]: tensor for tensor in inputs}


def classifier_bundle(
    classifier: keras.Model,
    config: RunConfig,
    data: DataInfo,
    *,
    kind: str = "classifier",
    loss: keras.losses.Loss | None = None,
) -> Bundle:
    """A classifier trained behind on-device augmentation, with sparse cross-entropy (or
    ``loss``) and accuracy, exported as the signature ``classifier`` of export ``kind``."""
    trainable = with_augmentation(
        classifier, data, enabled=config.data.augment, seed=config.train.seed
    )
    trainable.compile(
        optimizer=keras.optimizers.Adam(config.train.learning_rate),
        loss=loss or keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return Bundle(model=trainable, exports={"classifier": Export(classifier, kind)})
