"""Training configuration: three small typed dataclasses, one preset per model, CLI overrides.

After tensorflow/models ``official/core/config_definitions.py``: a run is described completely by a
``RunConfig`` = model name + ``DataConfig`` (what to read) + ``ModelConfig`` (what to build) +
``TrainConfig`` (how to fit). Every field has a documented default (its ``help`` metadata, which is
also the ``--help`` text) and every field is a command-line flag, generated from the dataclasses by
``stampnet.training.flags``; flags default to "not given", so a preset (``ModelSpec.data_config``
/ ``model_config`` / ``train_config``) is overridden only where the user asked.

Model-specific knobs that are not worth a typed field go into ``ModelConfig.options`` (a dict,
``--option key=value``, values parsed as JSON when they parse, else kept as strings); a spec reads
them with ``config.model.option("name", default)``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from stampnet.constants import DEFAULT_CROP_SIZE
from stampnet.features import DEFAULT_FEATURE_SET, DEFAULT_NO_MATCH, NO_MATCH_ENCODINGS

BALANCE_CHOICES = ("none", "oversample", "weights")


def _field(default, help: str, *, flag: str | None = None, choices=None, factory=None):
    """A dataclass field whose metadata carries its command-line flag and help text."""
    metadata = {"help": help, "flag": flag, "choices": choices}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class DataConfig:
    """What to read: the dataset, the feature set, balancing and augmentation."""

    data_dir: str | None = _field(
        None,
        "built dataset directory (from `stampnet build`); default: the built-in simulated data",
        flag="--data",
    )
    builtin_size: str = _field(
        "default",
        "built-in simulated data used when --data is not given: default (1,000 objects), "
        "tiny (60) or a number of objects; built once under tfrecords/",
        flag="--size",
    )
    feature_set: str = _field(
        DEFAULT_FEATURE_SET,
        "metadata features: a set name (alerce23, alerce26, none) or a comma-separated list",
        flag="--features",
    )
    no_match: str = _field(
        DEFAULT_NO_MATCH,
        "features: how ZTF's -999 for a missing catalogue match (no PS1 source within 30\", no "
        "reference source) is read: missing (left out of the train statistics, normalised to 0, "
        "the train mean of the matches) or clip (ALeRCE's, to -1, nearer than any real match; "
        "what ALeRCE's imported weights read)",
        flag="--no-match-as",
        choices=NO_MATCH_ENCODINGS,
    )
    balance: str = _field(
        "none",
        "class balancing of the training split: oversample (ALeRCE), weights, or none",
        choices=BALANCE_CHOICES,
    )
    augment: bool = _field(
        True, "random flips/rotations of the stamps during training (--no-augment disables)"
    )
    max_detections: int = _field(
        5, "sequence models: the first N detections of an object are used (padded and masked)"
    )
    labelled_only: bool | None = _field(
        None, "drop unlabelled examples; default: what the model needs (ModelSpec.needs_labels)"
    )


@dataclasses.dataclass
class ModelConfig:
    """What to build. Fields a model does not use are ignored by it (and recorded anyway)."""

    crop_size: int = _field(
        DEFAULT_CROP_SIZE,
        "side of the centred stamp crop in pixels, at most the stamp's (ALeRCE: 21; 41, 63)",
    )
    channels: tuple[str, ...] = _field(
        None,
        "stamps the model sees, a comma-separated subset of the dataset card's channels "
        "(ZTF: science,template,difference); empty: all of them",
        factory=tuple,
    )
    normalisation: str = _field(
        "minmax",
        "per-stamp normalisation inside the model",
        choices=("minmax", "standardize", "none"),
    )
    kernel_size: int = _field(3, "convolution kernel size of the stamp encoder")
    filters: int = _field(32, "filters of the first convolutions (later blocks use twice as many)")
    dense_units: int = _field(64, "units of the dense layers")
    dropout_rate: float = _field(0.5, "dropout rate")
    pool_after: str = _field(
        "dense_1",
        "stamp classifier: where rotations are pooled, after the first or the second dense layer",
        choices=("dense_1", "dense_2"),
    )
    rotation_invariant: bool = _field(True, "encode the four 90-degree rotations and pool them")
    latent_dim: int = _field(16, "autoencoders: latent dimension")
    beta: float = _field(
        0.5, "weight of the regulariser: entropy term (classifiers) or KL term (VAEs)"
    )
    kl_annealing: str = _field(
        "linear",
        "VAEs: KL weight schedule (none, linear ramp, cyclical ramps)",
        choices=("none", "linear", "cyclical"),
    )
    kl_annealing_epochs: int = _field(10, "VAEs: epochs of one KL ramp from 0 to beta")
    num_components: int = _field(0, "VaDE: mixture components (0: one per class of the data)")
    recurrent: str = _field(
        "lstm", "sequence models: temporal layer", choices=("lstm", "gru", "conv1d")
    )
    recurrent_units: int = _field(64, "sequence models: units of the temporal layer")
    encoder_run: str | None = _field(
        None,
        "run folder of a trained encoder (latent classifier, sequence models)",
        flag="--encoder",
    )
    options: dict[str, Any] = _field(
        None,
        "model-specific option KEY=VALUE (JSON value), repeatable",
        flag="--option",
        factory=dict,
    )

    def option(self, name: str, default=None):
        """A model-specific option (``--option name=value``), or ``default``."""
        return self.options.get(name, default)

    def flag(self, name: str, default: bool) -> bool:
        """A yes/no model option (``--option name=true|false``), or ``default``."""
        value = self.options.get(name, default)
        if not isinstance(value, bool):
            raise ValueError(f"--option {name} takes true or false, received {value!r}")
        return value


@dataclasses.dataclass
class TrainConfig:
    """How to fit: optimiser, epochs, early stopping, seeds, and where the run goes."""

    epochs: int = _field(30, "maximum number of epochs")
    batch_size: int = _field(64, "batch size")
    learning_rate: float = _field(1e-3, "Adam learning rate")
    steps_per_epoch: int | None = _field(
        None, "training batches per epoch; default: one pass over the training split"
    )
    validation_steps: int | None = _field(
        None, "validation batches per epoch; default: the whole validation split"
    )
    patience: int = _field(5, "early stopping: epochs without val_loss improvement (0 disables it)")
    seed: int = _field(0, "random seed of weights, shuffling and augmentation")
    out: str | None = _field(None, "run folder; default: runs/<model>-<timestamp> under --runs-dir")
    runs_dir: str = _field("runs", "parent folder of new run folders")
    resume: str | None = _field(
        None, "continue an interrupted run from its folder (its config.json is reused)"
    )
    verbose: int = _field(
        1,
        "progress output: 0 silent, 1 Keras's bar on a terminal (one line per epoch elsewhere), "
        "2 one line per epoch",
    )
    init: str | None = _field(
        None,
        "start from a saved model (MODEL.keras or a run folder): layers matching by name and "
        "weight shapes are loaded (stampnet.training.finetune)",
    )
    freeze: str = _field(
        "none",
        "keep parts fixed while training: trunk (the convolutional trunk) or none",
        choices=("none", "trunk"),
    )
    # Devices (stampnet.training.distribute): how the batch is spread, not what is learnt.
    strategy: str = _field(
        "default",
        "devices: default (one), mirrored (every local GPU, or every logical CPU), multiworker "
        "(the machines of TF_CONFIG); --batch-size is the global batch",
        choices=("default", "mirrored", "multiworker"),
    )
    mixed_precision: bool = _field(
        False, "mixed_float16 compute with float32 variables (fast on GPUs of compute cap. >= 7)"
    )
    jit_compile: bool | None = _field(
        None, "XLA-compile the training step; default: Keras decides (on for one GPU, else off)"
    )


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a run: ``model`` (registry name) and the three sections."""

    model: str
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model_config: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "data": dataclasses.asdict(self.data),
            "model_config": dataclasses.asdict(self.model_config),
            "train": dataclasses.asdict(self.train),
        }

    @classmethod
    def from_dict(cls, config: Mapping) -> RunConfig:
        """A saved run's config (``config.json`` holds every field); a field it lacks was added
        after the run and takes the value the run was trained with (``SAVED_BEFORE``)."""
        data = {**SAVED_BEFORE["data"], **config.get("data", {})}
        return cls(
            model=config["model"],
            data=_section_from_dict(DataConfig, data),
            model_config=_section_from_dict(ModelConfig, config.get("model_config", {})),
            train=_section_from_dict(TrainConfig, config.get("train", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


SECTIONS = {"data": DataConfig, "model_config": ModelConfig, "train": TrainConfig}

#: What runs saved before a field existed did, where that is not the field's default: they
#: clipped a missing catalogue match (the default until round 14 is now ``missing``), so
#: resuming or reading back such a run keeps the encoding its model was trained with.
SAVED_BEFORE = {"data": {"no_match": "clip"}}


def _section_from_dict(section_class, values: Mapping):
    known = {field.name for field in dataclasses.fields(section_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"Unknown {section_class.__name__} fields {unknown}; known fields: {sorted(known)}"
        )
    values = dict(values)
    if "channels" in values:
        values["channels"] = tuple(values["channels"])
    return section_class(**values)


def apply_overrides(config: RunConfig, overrides: Mapping[str, Mapping[str, Any]]) -> RunConfig:
    """A copy of ``config`` with the given fields replaced; options are merged, not replaced."""
    sections = {}
    for section, values in overrides.items():
        if section not in SECTIONS:
            raise ValueError(
                f"Unknown config section {section!r}; expected one of {list(SECTIONS)}"
            )
        current = getattr(config, section)
        values = dict(values)
        if "options" in values:
            values["options"] = {**current.options, **values["options"]}
        known = {field.name for field in dataclasses.fields(current)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown {section} fields {unknown}; known: {sorted(known)}")
        sections[section] = dataclasses.replace(current, **values)
    return dataclasses.replace(config, **sections)


def resolve_features(feature_set: str) -> str | Sequence[str]:
    """``--features`` value -> a set name or a tuple of names (features.resolve_feature_names)."""
    if "," in feature_set:
        return tuple(name.strip() for name in feature_set.split(",") if name.strip())
    return feature_set
