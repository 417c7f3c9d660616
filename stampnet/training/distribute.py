"""Training on any number of devices: ``--strategy default|mirrored|multiworker``.

- ``default``: one device (TensorFlow's default strategy; a GPU when there is one).
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over every local GPU (or, with none, every
  logical CPU device), one replica each; variables are mirrored, gradients all-reduced.
- ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the machines named in the
  ``TF_CONFIG`` environment variable (``{"cluster": {"worker": ["host:port", ...]}, "task":
  {"type": "worker", "index": i}}``), each with its local replicas. Start the same command on
  every worker, with the same ``--out`` on a filesystem every worker can read.

Batches and learning rate. ``--batch-size`` is the GLOBAL batch: each step the replicas together
see ``batch_size`` examples, ``batch_size / num_replicas`` each, the gradient is the mean over
the global batch and BatchNormalization normalises over the global batch (``fitting``), so a
run's trajectory does not depend on how many devices share it, up to float summation order
(``tests/test_distribute.py``: two workers, or two replicas, within 1e-5 of one device after four
steps; measured 1e-7) and to dropout and augmentation draws, which each replica makes for its
own rows (statistically alike, not the same numbers as on one device). The learning rate is
used as given. To train faster on more devices, raise the global batch with the device count and
scale the learning rate with it: linearly for SGD (Goyal et al. 2017, with a few epochs of
warm-up), by the square root for Adam as a safer default (Adam's update size does not grow with
the batch the way SGD's does).

Input. Every worker runs the same seeded pipeline and keeps only its replicas' rows of each
global batch (``distribute_dataset``), so the global batches are exactly those of one process,
whatever the number of workers: that is what makes a multi-worker run reproduce a single-worker
one. The cost is that every worker reads (not trains on) the whole stream; when reading bounds
a large cluster, shard the TFRecord files per worker instead. Augmentation runs inside the model
(``StampAugmentation``), so it runs on each replica's device, in the strategy.

Files. Only the chief (worker 0) writes the run folder; every other worker writes into a scratch
folder (``run_dir_for``) that is deleted at the end, as the TensorFlow multi-worker guide does,
because saving involves every worker but the files must exist once.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import tensorflow as tf

from stampnet.training.onednn import empty_batch_safe_convolutions, onednn_may_be_on

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (one of ``STRATEGIES``).

    Create it before any other TensorFlow work: ``MultiWorkerMirroredStrategy`` starts the
    collective runtime and fails once TensorFlow has initialised its devices.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    # One per process: a second MirroredStrategy reuses the first one's collective instance keys.
    if name not in _CREATED:
        _CREATED[name] = _new_strategy(name)
    return _CREATED[name]


_CREATED: dict[str, tf.distribute.Strategy] = {}


def _new_strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy multiworker needs the TF_CONFIG environment variable on every worker, "
                'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}\' (index 1 on the second host)'
            )
        _check_tf_config(os.environ["TF_CONFIG"])
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, received {name!r}")


def _check_tf_config(text: str) -> None:
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"TF_CONFIG is not a valid cluster description ({error}): {text!r}; expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'
        ) from None
    if not workers:
        raise ValueError(f"TF_CONFIG names no workers: {text!r}")


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def worker_index(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """(task type, task index) of this process; (None, 0) outside a multi-worker cluster."""
    if not is_multi_worker(strategy):
        return None, 0
    resolver = strategy.cluster_resolver
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The process that writes the run folder: a ``chief`` task, else worker 0."""
    task_type, task_id = worker_index(strategy)
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)


def check_global_batch(batch_size: int, strategy: tf.distribute.Strategy) -> None:
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"--batch-size {batch_size} is the global batch and must be divisible by the "
            f"{replicas} replicas of the strategy; use a multiple of {replicas}"
        )


def distribute_dataset(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy, batch_size):
    """The input of ``fit``/``evaluate`` under ``strategy``.

    Single process: the dataset itself (Keras splits each global batch over the local replicas).
    Multi-worker: every worker runs the same pipeline and keeps the rows of its replicas, in the
    order of ``strategy.extended``'s replica ids, so the global batch is the single-process one.
    A short last batch leaves some replicas fewer (or no) rows; ``tf.distribute`` pads those
    steps, so every worker runs the same number of steps.
    """
    if not is_multi_worker(strategy):
        return dataset
    per_replica = batch_size // strategy.num_replicas_in_sync

    def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        start = context.input_pipeline_id * local * per_replica
        stop = start + local * per_replica

        def rows(*element):
            sliced = tf.nest.map_structure(lambda tensor: tensor[start:stop], element)
            return sliced if len(sliced) > 1 else sliced[0]

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.map(rows).rebatch(per_replica).with_options(options)

    return strategy.distribute_datasets_from_function(per_worker)


@contextlib.contextmanager
def precision_policy(mixed: bool) -> Iterator[None]:
    """``mixed_float16`` while the models are built (float16 compute, float32 variables; Keras
    wraps the optimizer in a ``LossScaleOptimizer`` at compile time), float32 again after."""
    import keras

    previous = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def run_dir_for(config, strategy: tf.distribute.Strategy, new_run_dir) -> Path:
    """The folder this process writes the run into.

    One process: ``new_run_dir(config)``. Multi-worker: the chief's is ``--out`` (or
    ``--resume``), which every worker must be given (a timestamped default would differ between
    workers); every other worker gets a scratch copy of its checkpoints and backup (so that
    ``--resume`` restores the same state everywhere), deleted when it exits.
    """
    if not is_multi_worker(strategy):
        return new_run_dir(config)
    shared = config.train.resume or config.train.out
    if not shared:
        raise ValueError(
            "--strategy multiworker needs --out RUN_DIR (the same on every worker, on a "
            "filesystem they all read) or --resume RUN_DIR"
        )
    if is_chief(strategy):
        return new_run_dir(config)
    task_type, task_id = worker_index(strategy)
    scratch = Path(tempfile.mkdtemp(prefix=f"stampnet-{task_type}-{task_id}-"))
    atexit.register(shutil.rmtree, scratch, True)
    for name in ("config.json", "history.csv"):
        if (Path(shared) / name).is_file():
            shutil.copy2(Path(shared) / name, scratch / name)
    for name in ("checkpoints", "backup"):
        if (Path(shared) / name).is_dir():
            shutil.copytree(Path(shared) / name, scratch / name)
    return scratch


@contextlib.contextmanager
def fitting(strategy, model, sample_dataset: tf.data.Dataset, exports=()):
    """The context ``fit`` runs in: under a strategy, the same steps as on one device.

    ``exports`` (models sharing ``model``'s weights) forget the strategy: ``predict_on_batch``
    of a model created under a strategy with several replicas feeds the whole batch to every
    replica and concatenates the copies, and only the trained model needs the strategy. An
    export that IS the trained model (the latent classifier's) keeps it: without its strategy,
    ``fit`` would update mirrored variables outside the strategy's scope.

    Four things would otherwise make a run depend on its number of replicas:

    - Batch order. The training pipeline reshuffles with a seed generator that advances each
      time an iterator is created, and Keras (3.15) under a strategy builds the model from one
      batch of a throwaway iterator before training: the run would train on the second
      iterator's order, a single-device run on the first. Here the model is built from the
      dataset's ``element_spec`` and nothing reads the data before ``fit``.
    - BatchNormalization statistics: each replica would normalise over its own rows only; with
      several replicas they are computed over the global batch (``synchronized``), as on one
      device (set for the fit only, so the exports are those of a single-device run).
    - Empty replica batches (a global batch with fewer rows than replicas): oneDNN's
      convolution returns a wrong shape for them, so convolutions skip them (``onednn``).
    - ``multiworker``: Keras 3 (3.15) cannot ``fit`` under ``MultiWorkerMirroredStrategy``
      (tensorflow/tensorflow#72388): it builds the optimizer by ``reduce``-ing one distributed
      input batch, which the strategy cannot do for nested inputs, and it averages each step's
      logs with a reduction along axis 0, which fails on scalars. So the model is built in the
      strategy's scope, forgets the strategy (Keras then neither reduces inputs nor distributes
      the validation data: every worker validates and evaluates locally, on the same mirrored
      weights), and trains with ``multi_worker_train_function``: ``strategy.run`` of the model's
      own ``train_step``, its scalar logs averaged over the replicas.
    """
    several = strategy.num_replicas_in_sync > 1 or is_multi_worker(strategy)
    if several:
        for export in exports:
            if export is not model:
                export._distribute_strategy = None
    if getattr(model, "_distribute_strategy", None) is None:  # the default strategy
        yield
        return
    spec = sample_dataset.element_spec
    guard = several and onednn_may_be_on()
    with synchronized_batch_norm(model, several), empty_batch_safe_convolutions(model, guard):
        if is_multi_worker(strategy):
            with strategy.scope():
                model._symbolic_build(data_batch=spec)
            model._distribute_strategy = None
            model.make_train_function = multi_worker_train_function(model, strategy)
            yield
            return
        build = model._maybe_symbolic_build

        def build_without_reading(iterator=None, data_batch=None):
            build(data_batch=spec if data_batch is None else data_batch)

        model._maybe_symbolic_build = build_without_reading
        try:
            yield
        finally:
            del model._maybe_symbolic_build


@contextlib.contextmanager
def synchronized_batch_norm(model, enabled: bool) -> Iterator[None]:
    """Every ``BatchNormalization`` of ``model`` computes its batch statistics over all the
    replicas while the context lasts (when ``enabled``)."""
    import keras

    layers = [
        layer
        for layer in (model._flatten_layers() if enabled else ())
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized
    ]
    for layer in layers:
        layer.synchronized = True
    try:
        yield
    finally:
        for layer in layers:
            layer.synchronized = False


def multi_worker_train_function(model, strategy: tf.distribute.Strategy):
    """A ``make_train_function`` for ``model`` that runs its ``train_step`` on every replica of
    ``strategy`` (gradients are all-reduced by the optimizer inside ``train_step``)."""

    @tf.function(reduce_retracing=True)
    def one_step(data):
        outputs = strategy.run(model.train_step, args=(data,))
        return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), outputs)

    def function(iterator):
        return one_step(next(iterator))

    def make_train_function(force: bool = False):
        if model.train_function is None or force:
            model.train_function = function
        return model.train_function

    return make_train_function
