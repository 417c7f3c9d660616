"""The data side of a training run: what the data holds (``DataInfo``) and its pipelines.

``data_info`` reads the dataset card into what a ``ModelSpec`` builds from (classes, features
and their statistics, stamp geometry, channels); ``make_dataset`` gives the tf.data pipeline of
a split with the inputs the model takes; ``split_size`` counts a split's examples from the card.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import tensorflow as tf

from stampnet.constants import UNLABELLED
from stampnet.data.card import feature_stats_for
from stampnet.features import DETECTION_FIELDS, resolve_feature_names
from stampnet.geometry import StampGeometry
from stampnet.layers.preprocessing import center_crop_bounds
from stampnet.training.config import RunConfig, resolve_features
from stampnet.training.spec import DataInfo, ModelSpec


def split_size(card, dataset: str, split: str, labelled_only: bool) -> int:
    """Examples a pipeline yields for a split, from the card's ``counts[dataset][split][label]``."""
    counts = card.get("counts", {}).get(dataset, {}).get(split, {})
    return int(sum(n for label, n in counts.items() if not (labelled_only and label == UNLABELLED)))


def data_info(config: RunConfig, spec: ModelSpec, data_dir: Path, card) -> DataInfo:
    feature_names = tuple(resolve_feature_names(resolve_features(config.data.feature_set)))
    geometry = StampGeometry.from_card(card)
    channels = tuple(config.model_config.channels) or geometry.channels
    unknown = [name for name in channels if name not in geometry.channels]
    if unknown:
        raise ValueError(
            f"--channels {','.join(channels)}: {unknown} not in the data; the card of "
            f"{data_dir} names the channels {','.join(geometry.channels)}"
        )
    try:
        center_crop_bounds(config.model_config.crop_size, geometry.size)
    except ValueError as error:
        raise ValueError(f"--crop-size does not fit the stamps of {data_dir}: {error}") from None
    return DataInfo(
        data_dir=data_dir,
        card=card,
        class_names=tuple(card["class_names"]),
        feature_names=feature_names,
        feature_stats=feature_stats_for(card, feature_names, config.data.no_match),
        crop_size=config.model_config.crop_size,
        channels=channels,
        geometry=geometry,
        max_detections=config.data.max_detections if spec.dataset == "sequences" else None,
        detection_feature_names=(
            (*DETECTION_FIELDS, "days_since_first") if spec.dataset == "sequences" else ()
        ),
        train_size=split_size(card, spec.dataset, "train", labelled_only(config, spec)),
    )


def labelled_only(config: RunConfig, spec: ModelSpec) -> bool:
    chosen = config.data.labelled_only
    return spec.needs_labels if chosen is None else chosen


def input_keys(model: keras.Model) -> frozenset[str] | None:
    """The input names of a functional model taking a dict (None for other models)."""
    try:
        inputs = model.input
    except (AttributeError, ValueError):  # a subclassed model that was never called
        return None
    return frozenset(inputs) if isinstance(inputs, dict) else None


def make_dataset(
    config,
    spec,
    info: DataInfo,
    split: str,
    transform=None,
    *,
    keys: frozenset[str] | None = None,
    training: bool = False,
):
    """The pipeline of a split; training: shuffled, balanced as configured, repeated.

    ``keys``: the input names the model takes; others are dropped (a functional Keras model
    rejects a dict with extra keys, e.g. ``features`` for an images-only classifier).
    """
    from stampnet.data import pipeline

    kwargs = dict(
        batch_size=config.train.batch_size,
        feature_names=info.feature_names,
        class_names=info.class_names,
        labelled_only=labelled_only(config, spec),
        balance=None if not training or config.data.balance == "none" else config.data.balance,
        shuffle=training,
        seed=config.train.seed,
        repeat=training,
        # The light-curve inputs: for a model built with the branch (--option
        # light_curve_units=N), or any functional model that takes them.
        with_history=bool(config.model_config.option("light_curve_units", 0))
        or (keys is not None and "light_curve" in keys),
    )
    if spec.dataset == "sequences":
        dataset = pipeline.sequence_dataset(
            info.data_dir, split, max_detections=config.data.max_detections, **kwargs
        )
    else:
        dataset = pipeline.alert_dataset(info.data_dir, split, **kwargs)
    if not training:
        # The pipeline filters unlabelled examples, so tf.data cannot know the number of
        # batches; the card does, and Keras then neither warns nor guesses at each epoch's end.
        size = split_size(info.card, spec.dataset, split, labelled_only(config, spec))
        batches = math.ceil(size / config.train.batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    if keys is not None:

        def select(inputs, *rest):
            return ({key: value for key, value in inputs.items() if key in keys}, *rest)

        dataset = dataset.map(select)
    if transform is not None:
        dataset = dataset.map(transform)
    return dataset
