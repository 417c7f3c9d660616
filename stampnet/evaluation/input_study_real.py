"""The paper's input comparison trained and scored on the labelled real alerts themselves.

``input_study.run_study`` trains on a built dataset (TFRecords). On the real sample
(``../shared/data/ztf``, 674 labelled alerts) the study instead trains in memory on the k-shot
training pool (``kshot.object_split``: 471 alerts, object-disjoint from the 203 evaluation
alerts) and scores each model on the evaluation alerts, so that every number here is on the same
held-back objects as the k-shot curve and the VAE pre-training benchmark.

The recipe is the stamp classifier's (``--model stamp_classifier``, Carrasco-Davis et al. 2021):
crop 21, dropout 0.5, cross-entropy minus 0.5 x the prediction entropy, Adam 1e-3, batch 64,
random rotations/flips/shifts, class balance (here by per-alert weights inversely proportional to
the class counts, since the pool is small enough to see whole every epoch), and early stopping on
the loss of an object-disjoint validation part of the pool with the best weights restored.
Features (``alerce23``) are normalised with statistics of the training part only.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Collection, Sequence

import numpy as np

from stampnet.constants import CHANNELS
from stampnet.evaluation.kshot import object_split
from stampnet.evaluation.real_sample import RealSample
from stampnet.features import DEFAULT_NO_MATCH

#: Training defaults of the real-sample study (see the module docstring for the recipe).
MAX_EPOCHS = 80
PATIENCE = 10
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
VALIDATION_FRACTION = 0.2
#: The stamps are cut to their central 25 x 25 pixels before training: the model sees the central
#: 21 x 21 after shifts of at most 2 pixels (``StampAugmentation``'s default) and rotations about
#: the centre, so the result is the same as on 63 x 63 stamps at a sixth of the pixels to move.
STUDY_STAMP_SIZE = 25
#: Training settings (and their defaults) recorded in every row: a study resumed from its rows
#: must use the same.
RUN_SETTINGS = {
    "max_epochs": MAX_EPOCHS,
    "patience": PATIENCE,
    "batch_size": BATCH_SIZE,
    "no_match": DEFAULT_NO_MATCH,
}


def central_stamps(sample: RealSample, size: int = STUDY_STAMP_SIZE) -> RealSample:
    """``sample`` with its stamps and masks cut to the central ``size`` x ``size`` pixels."""
    from stampnet.layers.preprocessing import center_crop_bounds

    start, stop = center_crop_bounds(size, sample.stamps.shape[1])
    return dataclasses.replace(
        sample,
        stamps=np.ascontiguousarray(sample.stamps[:, start:stop, start:stop]),
        stamp_mask=np.ascontiguousarray(sample.stamp_mask[:, start:stop, start:stop]),
    )


def balanced_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-alert weights ``n / (classes present x class count)``: every class weighs the same."""
    counts = np.bincount(labels, minlength=num_classes)
    per_class = np.where(counts > 0, labels.size / (np.count_nonzero(counts) * counts.clip(1)), 0)
    return per_class[labels].astype(np.float32)


def validation_split(
    sample: RealSample, pool: np.ndarray, fraction: float = VALIDATION_FRACTION, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``pool`` split by objectId into a training part and a validation part (early stopping)."""
    pool = np.asarray(pool, np.int64)
    train, validation = object_split(sample.subset(pool), fraction, seed)
    return pool[train], pool[validation]


def train_on_sample(
    sample: RealSample,
    train_index: np.ndarray,
    validation_index: np.ndarray,
    *,
    channels: Sequence[str],
    feature_set: str = "none",
    no_match: str = DEFAULT_NO_MATCH,
    seed: int = 0,
    max_epochs: int = MAX_EPOCHS,
    patience: int = PATIENCE,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
):
    """A stamp classifier trained from scratch on some alerts of ``sample``; its features (if
    any) are normalised with the statistics of the training alerts, a missing catalogue match
    read as ``no_match`` says (``features.NO_MATCH_ENCODINGS``).

    Returns:
        ``(classifier, history)``: the classifier with the weights of its best validation epoch,
        and ``{"epochs", "best_epoch", "loss", "val_loss", "epoch_cpu_seconds"}`` (the learning
        curve and the CPU time of each epoch, validation included).

    Raises:
        ValueError: an empty training or validation part.
    """
    import keras
    import tensorflow as tf

    from stampnet.features import FeatureStats, resolve_feature_names
    from stampnet.geometry import StampGeometry
    from stampnet.layers.augmentation import StampAugmentation
    from stampnet.losses.classification import EntropyRegularisedCrossentropy
    from stampnet.models.stamp_classifier import build_stamp_classifier

    train_index = np.asarray(train_index, np.int64)
    validation_index = np.asarray(validation_index, np.int64)
    if train_index.size == 0 or validation_index.size == 0:
        raise ValueError(
            f"training ({train_index.size}) and validation ({validation_index.size}) alerts "
            "must both be non-empty"
        )
    keras.utils.set_random_seed(seed)
    names = resolve_feature_names(feature_set)
    stats = None
    if names:
        columns = sample.inputs(names, train_index)["features"]
        stats = FeatureStats.fit(names, columns, no_match=no_match)
    classifier = build_stamp_classifier(
        class_names=sample.class_names,
        feature_stats=stats,
        crop_size=21,
        channels=channels,
        geometry=StampGeometry(*sample.stamps.shape[1:3], channels=CHANNELS),
    )
    inputs = {
        key: keras.Input(tensor.shape[1:], name=key) for key, tensor in classifier.input.items()
    }
    stamps, mask = StampAugmentation(seed=seed)(inputs["stamps"], inputs["stamp_mask"])
    trainable = keras.Model(inputs, classifier({**inputs, "stamps": stamps, "stamp_mask": mask}))
    trainable.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=EntropyRegularisedCrossentropy(beta=0.5),
    )
    num_classes = len(sample.class_names)

    def dataset(index, shuffle):
        labels = sample.labels[index]
        slices = (sample.inputs(names, index), labels, balanced_weights(labels, num_classes))
        data = tf.data.Dataset.from_tensor_slices(slices)
        if shuffle:
            data = data.shuffle(index.size, seed=seed, reshuffle_each_iteration=True)
        return data.batch(batch_size).cache() if not shuffle else data.batch(batch_size)

    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    clock = [time.process_time()]
    epoch_cpu = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: clock.append(time.process_time())
    )
    history = trainable.fit(
        dataset(train_index, True),
        validation_data=dataset(validation_index, False),
        epochs=max_epochs,
        callbacks=[stopping, epoch_cpu],
        shuffle=False,
        verbose=0,
    ).history
    val_loss = [float(value) for value in history["val_loss"]]
    return classifier, {
        "epochs": len(val_loss),
        "best_epoch": int(np.argmin(val_loss)) + 1,
        "loss": [float(value) for value in history["loss"]],
        "val_loss": val_loss,
        "epoch_cpu_seconds": np.diff(clock).tolist(),
    }


def run_real_study(
    sample: RealSample,
    channel_subsets: Sequence[Sequence[str]],
    feature_sets: Sequence[str],
    seeds: Sequence[int],
    *,
    eval_fraction: float = 0.3,
    split_seed: int = 0,
    validation_fraction: float = VALIDATION_FRACTION,
    on_row=None,
    log=print,
    done: Collection[tuple[str, str, int]] = (),
    **train_kwargs,
) -> list[dict]:
    """One classifier per (channels, features, seed), trained on the k-shot training pool and
    scored on the held-back evaluation alerts.

    ``done`` lists ``run_key``s (``("science,template", "none", 0)``) already finished, e.g. read
    back from a study cut short: they are skipped.

    Returns:
        One row per run made, with the keys ``input_study.summarise`` reads (``real_accuracy``,
        ``real_macro_recall``, ``real_macro_f1``), the confusion matrix, the learning curve
        (``loss``, ``val_loss``), epochs, CPU seconds per epoch and for the evaluation.
    """
    from stampnet.evaluation.transfer import evaluate_on_sample

    pool, held_out = object_split(sample, eval_fraction, split_seed)
    train_index, validation_index = validation_split(sample, pool, validation_fraction, split_seed)
    sample = central_stamps(sample)
    evaluation = sample.subset(held_out)
    rows = []
    # Seeds outermost: a study cut short still has every condition at its first seeds.
    done = set(done)
    for seed, channels, features in itertools.product(seeds, channel_subsets, feature_sets):
        if (",".join(channels), features, int(seed)) in done:
            continue
        started = time.process_time(), time.perf_counter()
        classifier, history = train_on_sample(
            sample,
            train_index,
            validation_index,
            channels=channels,
            feature_set=features,
            seed=int(seed),
            **train_kwargs,
        )
        evaluated = time.process_time()
        result = evaluate_on_sample(classifier, evaluation)
        row = {
            "channels": ",".join(channels),
            "features": features,
            "seed": int(seed),
            **real_scores(result),
            "train_alerts": int(train_index.size),
            "validation_alerts": int(validation_index.size),
            "eval_alerts": len(evaluation),
            "epochs": history["epochs"],
            "best_epoch": history["best_epoch"],
            "best_val_loss": min(history["val_loss"]),
            "loss": history["loss"],
            "val_loss": history["val_loss"],
            "epoch_cpu_seconds": history["epoch_cpu_seconds"],
            "evaluation_cpu_seconds": time.process_time() - evaluated,
            **{key: train_kwargs.get(key, default) for key, default in RUN_SETTINGS.items()},
            "cpu_seconds": time.process_time() - started[0],
            "seconds": time.perf_counter() - started[1],
        }
        rows.append(row)
        if on_row is not None:
            on_row(row)
        log(
            f"{row['channels']} {features} seed {seed}: accuracy {row['real_accuracy']:.3f}, "
            f"macro-F1 {row['real_macro_f1']:.3f} (best epoch {row['best_epoch']} of "
            f"{row['epochs']}, {row['seconds']:.0f} s)"
        )
    return rows


def real_scores(result: dict) -> dict:
    """The ``real_*`` scores of a row from ``transfer.evaluate_on_sample``'s result: accuracy,
    macro recall, macro-F1, confusion matrix and their 95 % bootstrap intervals."""
    scores = {f"real_{key}": result[key] for key in ("accuracy", "macro_recall", "macro_f1")}
    scores["real_confusion_matrix"] = result["confusion_matrix"]
    for score, interval in bootstrap_intervals(result["confusion_matrix"]).items():
        scores[f"real_{score}_ci95"] = interval
    return scores


def bootstrap_intervals(
    confusion, *, draws: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, list[float]]:
    """Percentile intervals of accuracy and macro-F1 over resamplings of the evaluation alerts.

    The (true, predicted) pairs of ``confusion`` (rows: true class) are drawn with replacement,
    ``draws`` times: the spread says how much the numbers would move on another evaluation set of
    the same size and class mix, which seeds alone do not show. Macro-F1 averages the classes
    present in each draw.
    """
    matrix = np.asarray(confusion, np.int64)
    classes = matrix.shape[0]
    true, predicted = np.nonzero(matrix)
    counts = matrix[true, predicted]
    true, predicted = np.repeat(true, counts), np.repeat(predicted, counts)
    picks = np.random.default_rng(seed).integers(0, true.size, (draws, true.size))
    cells = true[picks] * classes + predicted[picks]
    offsets = np.arange(draws)[:, None] * classes * classes
    tables = np.bincount((cells + offsets).ravel(), minlength=draws * classes * classes)
    tables = tables.reshape(draws, classes, classes).astype(np.float64)
    hits = np.diagonal(tables, axis1=1, axis2=2)
    support, guessed = tables.sum(axis=2), tables.sum(axis=1)
    f1 = np.where(support + guessed > 0, 2 * hits / np.maximum(support + guessed, 1), 0.0)
    present = support > 0
    macro_f1 = (f1 * present).sum(axis=1) / present.sum(axis=1)
    accuracy = hits.sum(axis=1) / true.size
    tails = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    return {
        "accuracy": np.percentile(accuracy, tails).tolist(),
        "macro_f1": np.percentile(macro_f1, tails).tolist(),
    }


def binomial_standard_error(accuracy: float, alerts: int) -> float:
    """Standard error of an accuracy measured on ``alerts`` independent alerts."""
    return float(np.sqrt(accuracy * (1 - accuracy) / max(alerts, 1)))
