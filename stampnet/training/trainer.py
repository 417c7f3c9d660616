"""The one training loop every model goes through: ``train(config) -> TrainResult``.

1. resolve the run folder (``runs.new_run_dir``) and write ``config.json`` first, so that an
   interrupted run can always be resumed (``--resume RUN_DIR``);
2. seed everything (``keras.utils.set_random_seed``): weights, shuffling, augmentation;
3. find the data (``--data`` or the built-in simulated dataset), read its card, fill ``DataInfo``
   (``stampnet.training.inputs``);
4. ``ModelSpec.build`` -> ``Bundle``; tf.data pipelines from ``stampnet.data.pipeline``;
5. ``fit`` with progress output, TensorBoard, a checkpoint every epoch, the best checkpoint,
   early stopping, CSV history and ``resume.EpochBackup`` (the exact-resume mechanism);
6. restore the best weights (from ``checkpoints/best.weights.h5``, which survives a resume,
   unlike ``EarlyStopping(restore_best_weights=True)``'s in-memory copy), save the exports
   (``model.keras``, ``saved_model/``), evaluate on validation and test, write the model card.

The training split repeats and an epoch is ``steps_per_epoch`` batches (default: one pass over
the split's examples), so oversampling (an endless stream) and plain shuffling behave alike.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn import metrics as skm

from stampnet.data.card import load_card
from stampnet.data.locate import resolve_data_dir
from stampnet.training import distribute, progress, resume, runs
from stampnet.training.config import RunConfig
from stampnet.training.export import export_saved_model
from stampnet.training.inputs import data_info, input_keys, labelled_only, make_dataset, split_size
from stampnet.training.registry import get_spec
from stampnet.training.spec import Bundle, DataInfo, ModelSpec


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns: the run folder and what it holds."""

    run_dir: Path
    bundle: Bundle
    history: object  # pandas.DataFrame, one row per epoch
    metrics: dict


def _callbacks(run_dir: Path, config: RunConfig, bundle: Bundle, monitor: str, has_validation):
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    # A resumed run must not let its first epoch overwrite a better "best" from before the crash.
    history = runs.read_history(run_dir)
    best_so_far = float(history[monitor].min()) if monitor in history else None
    callbacks = []
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")))
    else:
        print("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            str(checkpoints / "last.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.ModelCheckpoint(
            str(checkpoints / "best.weights.h5"),
            save_weights_only=True,
            save_best_only=True,
            monitor=monitor,
            mode="min",
            initial_value_threshold=best_so_far,
        ),
        keras.callbacks.CSVLogger(str(run_dir / runs.HISTORY_NAME), append=True),
    ]
    if config.train.patience > 0 and has_validation:
        callbacks.append(
            resume.ResumableEarlyStopping(
                functools.partial(runs.read_history, run_dir),
                monitor=monitor,
                patience=config.train.patience,
                mode="min",
            )
        )
    # Last of ours: the backup is taken only after the epoch's row and checkpoints are written.
    callbacks.append(resume.EpochBackup(run_dir))
    return callbacks + list(bundle.callbacks) + [progress.TrainingProgress()]  # bar or lines


def train(config: RunConfig, *, callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrainResult:
    """Trains ``config.model`` and fills its run folder; ``callbacks`` are added last (tests)."""
    spec = get_spec(config.model)
    strategy = distribute.make_strategy(config.train.strategy)  # before any other TF work
    distribute.check_global_batch(config.train.batch_size, strategy)
    run_dir = distribute.run_dir_for(config, strategy, runs.new_run_dir)
    runs.write_config(run_dir, config)
    keras.utils.set_random_seed(config.train.seed)
    data_dir = resolve_data_dir(config.data.data_dir, builtin_size=config.data.builtin_size)
    card = load_card(data_dir)
    resume.check_dataset(run_dir, card, data_dir, resuming=bool(config.train.resume))
    info = data_info(config, spec, data_dir, card)
    if info.train_size == 0:
        raise ValueError(
            f"The train split of {data_dir} has no usable {spec.dataset} examples "
            f"(labelled only: {labelled_only(config, spec)}; card counts: {card.get('counts')}); "
            f"{config.model} cannot be trained on it"
        )
    with strategy.scope(), distribute.precision_policy(config.train.mixed_precision):
        bundle = spec.build(config, info)
    if config.train.jit_compile is not None:
        bundle.model.jit_compile = config.train.jit_compile
    init_report = start_from(config, bundle, info)
    print(f"{config.model}: {info.train_size} training examples from {data_dir}; run {run_dir}")

    val_size = split_size(card, spec.dataset, "validation", labelled_only(config, spec))
    has_validation = val_size > 0
    monitor = bundle.monitor if has_validation else bundle.monitor.removeprefix("val_")
    steps = config.train.steps_per_epoch or math.ceil(info.train_size / config.train.batch_size)
    transform, keys = bundle.batch_transform, input_keys(bundle.model)
    train_data = make_dataset(config, spec, info, "train", transform, keys=keys, training=True)
    val_data = (
        make_dataset(config, spec, info, "validation", transform, keys=keys)
        if has_validation
        else None
    )
    with strategy.scope():
        ensure_built(bundle.model, train_data)
        # Resume at the last finished epoch, on the batches an uninterrupted run would see next.
        initial_epoch = resume.restore(bundle.model, run_dir)
    train_data = train_data.skip(initial_epoch * steps)
    exports = [export.model for export in bundle.exports.values()]
    fitting = distribute.fitting(strategy, bundle.model, train_data, exports)
    train_data = distribute.distribute_dataset(train_data, strategy, config.train.batch_size)
    started = time.perf_counter()
    try:
        with fitting:
            bundle.model.fit(
                train_data,
                epochs=config.train.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps,
                validation_data=val_data,
                validation_steps=config.train.validation_steps,
                callbacks=_callbacks(run_dir, config, bundle, monitor, has_validation)
                + list(callbacks),
                verbose=config.train.verbose,
                shuffle=False,  # the pipeline shuffles
            )
    except KeyboardInterrupt:
        print(f"\nInterrupted; continue with: python train.py --resume {run_dir}")
        raise
    seconds = time.perf_counter() - started

    best = run_dir / "checkpoints" / "best.weights.h5"
    if best.is_file():
        bundle.model.load_weights(str(best))
    history = runs.read_history(run_dir)
    best_epoch = (
        int(history.loc[history[monitor].idxmin(), "epoch"]) if monitor in history else None
    )
    save_exports(run_dir, bundle)

    metrics = evaluate(config, spec, info, bundle, run_dir)
    runs.write_model_card(
        run_dir,
        config=config,
        data_dir=data_dir,
        card=card,
        class_names=info.class_names,
        feature_names=info.feature_names,
        exports={name: export.kind for name, export in bundle.exports.items()},
        metrics=metrics,
        epochs_trained=len(history),
        best_epoch=best_epoch,
        seconds=seconds,
        record=model_record(bundle, info),
        init=init_report.to_dict() if init_report is not None else None,
    )
    return TrainResult(run_dir=run_dir, bundle=bundle, history=history, metrics=metrics)


def start_from(config: RunConfig, bundle: Bundle, info: DataInfo):
    """``--init`` (weights of a saved model, matched by layer name and shape) and ``--freeze``
    (``stampnet.training.finetune``); the init report, or None. A resumed run restores its
    own weights afterwards (BackupAndRestore), so --init only shapes a run's first start."""
    from stampnet.training import finetune

    report = None
    if config.train.init:
        report = finetune.initialise_from(
            bundle.model, config.train.init, info.card, target_record=model_record(bundle, info)
        )
    finetune.freeze(bundle.model, config.train.freeze)
    return report


def model_record(bundle: Bundle, info: DataInfo):
    """What the run's main model was built for (``stampnet.compat``), as the model card keeps."""
    from stampnet import compat

    model = bundle.main_export[1].model
    known = {"class_names": info.class_names, "feature_names": info.feature_names}
    return compat.model_record(model, {**known, **info.geometry.to_dict()})


def ensure_built(model: keras.Model, dataset) -> None:
    """Builds a subclassed model on one batch: BackupAndRestore and checkpoints need weights
    before ``fit`` starts."""
    if model.built:
        return
    element = next(iter(dataset.take(1)))
    model(element[0] if isinstance(element, tuple) else element, training=False)


def save_exports(run_dir: Path, bundle: Bundle) -> None:
    """``model.keras`` (main export), ``<name>.keras`` (others), one SavedModel for all."""
    for index, (name, export) in enumerate(bundle.exports.items()):
        export.model.save(run_dir / ("model.keras" if index == 0 else f"{name}.keras"))
    export_saved_model(bundle.exports, run_dir / "saved_model")


def predict_classes(model: keras.Model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted class ids over a finite ``(inputs, label[, weight])`` dataset.

    The model is called, not ``predict_on_batch``-ed: for a model created under a strategy with
    several replicas (the trained model itself, e.g. the latent classifier), Keras's predict feeds
    the whole batch to every replica and concatenates the copies.
    """
    predict = tf.function(functools.partial(model, training=False), reduce_retracing=True)
    labels, predictions = [], []
    for element in dataset:
        inputs, label = element[0], element[1]
        probabilities = predict(inputs)
        labels.append(np.asarray(label))
        predictions.append(np.argmax(probabilities, axis=-1))
    if not labels:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(labels), np.concatenate(predictions)


def evaluate(config, spec: ModelSpec, info: DataInfo, bundle: Bundle, run_dir: Path) -> dict:
    """Loss/metrics of the trained model on validation and test; for classifiers also the test
    accuracy and confusion matrix (stored in evaluation.json; ``stampnet.training.summary``
    prints what the user reads)."""
    metrics = {}
    for split in ("validation", "test"):
        if split_size(info.card, spec.dataset, split, labelled_only(config, spec)) == 0:
            continue
        dataset = make_dataset(
            config, spec, info, split, bundle.batch_transform, keys=input_keys(bundle.model)
        )
        metrics[split] = bundle.model.evaluate(dataset, return_dict=True, verbose=0)
        classifier = bundle.classifier
        if classifier is None or not spec.needs_labels:
            continue
        labels, predictions = predict_classes(
            classifier.model,
            make_dataset(config, spec, info, split, keys=input_keys(classifier.model)),
        )
        matrix = skm.confusion_matrix(labels, predictions, labels=range(info.num_classes))
        metrics[split]["classifier_accuracy"] = float(np.mean(labels == predictions))
        metrics[split]["confusion_matrix"] = matrix.tolist()
        metrics[split]["num_examples"] = int(labels.size)
    runs.write_json(
        run_dir / runs.EVALUATION_NAME, {"class_names": list(info.class_names), **metrics}
    )
    return metrics
