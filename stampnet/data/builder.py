"""The TFDS builder ``ztf_alerts``: sharded TFRecords of raw stamps, masks and metadata.

Two configs share one ingestion (``stampnet.data.staging``):
- ``alerts``: one example per alert;
- ``sequences``: one example per object, its first alerts in time order.

What an example holds, and how it is stored, is ``stampnet.data.example_format``. TFDS writes
into an ``incomplete.*`` directory and renames it when every split is done: an interrupted build
never leaves a dataset that looks finished.

Reading needs no sources: ``tfds.builder("ztf_alerts/alerts", data_dir=...)`` (this module
imported) or ``tfds.builder_from_directory(...)`` (no stampnet needed), or ``load_builder`` below.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from stampnet.data.example_format import bounded_shuffle_memory, features
from stampnet.data.splits import DEFAULT_SPLIT_FRACTIONS
from stampnet.data.staging import Staging, staged
from stampnet.geometry import ZTF, StampGeometry

BUILDER_NAME = "ztf_alerts"
CONFIGS = ("alerts", "sequences")
#: Alerts kept per object in ``sequences``; pipelines truncate further (models use 5).
DEFAULT_STORED_DETECTIONS = 10


class ZtfAlerts(tfds.core.GeneratorBasedBuilder):
    """ZTF alerts with their three stamps, as TFRecords (Carrasco-Davis et al. 2021 inputs).

    Constructor arguments beyond TFDS' own (``data_dir``, ``config``) are only needed to build:

    Args:
        sources: alert files, directories or globs (see ``stampnet.data.readers.iter_alerts``).
        labels: a ``stampnet.data.labels.LabelTable``, or None (every alert "unknown").
        seed: seed of the per-object split.
        max_detections: alerts stored per object in the ``sequences`` config.
        split_fractions: (train, validation, test) fractions of the objects of every label.
        staging: an already ingested and split ``Staging`` to reuse (``build_dataset`` shares one
            between both configs); when None the builder ingests ``sources`` itself.
        reader: ``reader(sources, rejections=...) -> Iterator[Alert]`` used to ingest
            ``sources`` (``readers.iter_alerts`` by default; ``stampnet.data.own`` for arrays,
            tables and HDF5).
        geometry: the stamps' ``StampGeometry``; by default the staging's (the data's), else the
            dataset card's in ``data_dir`` when reading, else ZTF's.

    Example:
        >>> builder = ZtfAlerts(config="alerts", data_dir="tfrecords/ztf_sample", sources="ztf/")
        >>> builder.download_and_prepare()
        >>> train = builder.as_dataset(split="train")
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Raw stamps, masks and METADATA_FIELDS with presence flags.",
        "1.1.0": "history and history_mask: the light curve (prv_candidates, fp_hists); jd "
        "stored as float64 bytes (1.0.0 rounded it to float32, 0.25 d).",
    }
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="alerts", description="One example per alert."),
        tfds.core.BuilderConfig(
            name="sequences", description="One example per object: its alerts sorted by jd."
        ),
    ]

    def __init__(
        self,
        *,
        sources=None,
        labels=None,
        seed: int = 0,
        max_detections: int = DEFAULT_STORED_DETECTIONS,
        split_fractions=DEFAULT_SPLIT_FRACTIONS,
        staging: Staging | None = None,
        reader=None,
        geometry: StampGeometry | None = None,
        **kwargs,
    ):
        if int(max_detections) < 1:
            raise ValueError(f"max_detections must be >= 1, received {max_detections}")
        self._sources = sources
        self._labels = labels
        self._seed = int(seed)
        self._max_detections = int(max_detections)
        self._split_fractions = tuple(split_fractions)
        self._staging = staging
        self._reader = reader
        self._geometry = geometry
        if geometry is None and staging is not None:
            self._geometry = staging.geometry
        if self._geometry is None:
            self._geometry = _card_geometry(kwargs.get("data_dir")) or (
                None if sources is not None else ZTF
            )
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        if self._geometry is None:
            # Building from sources: the geometry is known once they are read.
            self._ingest()
            self._geometry = self._staging.geometry
        return self.dataset_info_from_configs(
            features=features(self.builder_config.name, self._geometry),
            description=__doc__.split("\n\n")[0],
            homepage="https://www.ztf.caltech.edu/",
            citation="Carrasco-Davis et al. 2021, AJ 162, 231 (ALeRCE stamp classifier)",
        )

    def _ingest(self) -> None:
        """Reads ``sources`` into a scratch staging that lives until the builder is collected
        or ``download_and_prepare`` ends."""
        if self._sources is None:
            raise ValueError(
                f"Building {self.name}/{self.builder_config.name} needs sources= (alert "
                "files), or staging=; to read an existing build pass only data_dir."
            )
        self._own_stack = contextlib.ExitStack()
        scratch = self._own_stack.enter_context(tempfile.TemporaryDirectory(prefix="stampnet-"))
        self._staging = self._own_stack.enter_context(
            staged(
                scratch,
                self._sources,
                self._labels,
                self._split_fractions,
                self._seed,
                self._reader,
            )
        )

    def download_and_prepare(self, *args, **kwargs):
        with bounded_shuffle_memory(), contextlib.ExitStack() as stack:
            if self._staging is None:
                self._ingest()
            own_stack = getattr(self, "_own_stack", None)
            if own_stack is not None:
                stack.callback(own_stack.close)
                stack.callback(setattr, self, "_staging", None)
                self._own_stack = None
            return super().download_and_prepare(*args, **kwargs)

    # TFDS 4.9 prints "Downloading and preparing dataset Unknown size ..." before, and "Dataset
    # ... downloaded and prepared" after, every build, with no setting to turn them off: for
    # local alert files neither is true or useful, and stampnet's commands say what they build.
    def _log_download_bytes(self) -> None:
        pass

    def _log_download_done(self) -> None:
        pass

    def _split_generators(self, dl_manager):
        del dl_manager  # the sources are local files, read by the staging
        # TFDS refuses an empty split, and a small input can leave validation or test empty.
        return {split: self._generate_examples(split) for split in self._staging.splits()}

    def _generate_examples(self, split: str):
        if self.builder_config.name == "alerts":
            yield from self._staging.alert_examples(split)
        else:
            yield from self._staging.sequence_examples(split, self._max_detections)


def _card_geometry(data_dir) -> StampGeometry | None:
    """The geometry recorded in ``<data_dir>/dataset_card.json``, None without a card."""
    if data_dir is None:
        return None
    path = Path(data_dir) / "dataset_card.json"
    if not path.is_file():
        return None
    return StampGeometry.from_card(json.loads(path.read_text()))


class _RawBytesDecoder(tfds.decode.Decoder):
    """Decodes a ``Tensor`` feature stored as raw bytes (``Encoding.BYTES``), as TFDS would.

    TFDS 4.9's own decoding of such a feature reads its deprecated ``FeatureConnector.dtype`` and
    logs a deprecation warning per feature on every read; this one uses ``tf_dtype``.
    """

    def decode_example(self, serialized):
        if isinstance(serialized, dict):  # two or more unknown dimensions: stored beside
            value, shape = serialized["value"], serialized["shape"]
        else:  # at most one unknown dimension, told by the number of values
            value, shape = serialized, [-1 if size is None else size for size in self.feature.shape]
        return tf.reshape(tf.io.decode_raw(value, self.feature.tf_dtype), shape)


def raw_bytes_decoders(builder: tfds.core.DatasetBuilder) -> dict:
    """``as_dataset(decoders=...)`` for every raw-bytes tensor feature of ``builder``."""
    decoders = {}
    for name, feature in builder.info.features.items():
        serialized = feature.get_serialized_info()
        value = serialized["value"] if isinstance(serialized, dict) else serialized
        if (
            isinstance(feature, tfds.features.Tensor)
            and not isinstance(feature, tfds.features.Text)
            and value.np_dtype == np.object_
            and feature.np_dtype != np.object_
        ):
            decoders[name] = _RawBytesDecoder()
    return decoders


def version_dir(data_dir: str | Path, config: str) -> Path:
    """The finished TFDS directory of ``config`` under ``data_dir`` (highest version)."""
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {CONFIGS}, received {config!r}")
    base = Path(data_dir) / BUILDER_NAME / config
    found = sorted(
        (
            path
            for path in base.glob("*")
            if _is_version(path.name) and (path / "dataset_info.json").is_file()
        ),
        key=lambda path: tfds.core.Version(path.name),
    )
    if not found:
        raise FileNotFoundError(
            f"No finished {BUILDER_NAME}/{config} dataset under {data_dir} (looked in {base}); "
            "build one with `stampnet build --source ALERTS --out DIR`."
        )
    return found[-1]


def _is_version(name: str) -> bool:
    try:
        tfds.core.Version(name)
    except ValueError:
        return False
    return True


def load_builder(data_dir: str | Path, config: str) -> tfds.core.DatasetBuilder:
    """A read-only builder of a finished dataset; needs neither sources nor this class."""
    return tfds.builder_from_directory(str(version_dir(data_dir, config)))
