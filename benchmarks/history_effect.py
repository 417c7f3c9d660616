"""Does the light-curve history help classify real alerts from their FIRST packet alone?

Reads the real sample with its history (``iter_alerts(..., history=True)``), keeps the first
packet of every labelled object, and trains the stamp classifier (ALeRCE's, alerce23 features)
with and without the light-curve branch on the same object-level train/test splits, for several
seeds. Prints the share of alerts with a non-empty history and, per arm, test accuracy and
macro-F1 (mean and spread over seeds).

    python benchmarks/history_effect.py [--source ../shared/data/ztf] [--seeds 3] [--epochs 25]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from stampnet.features import DEFAULT_NO_MATCH, NO_MATCH_ENCODINGS
from stampnet.shared_data import shared_dir

REPO = Path(__file__).resolve().parents[1]
SHARED = shared_dir()
CLASSES = ("SN", "AGN", "VS", "asteroid", "bogus")


def first_packets(source: Path):
    from stampnet.data.alert import RejectionLog
    from stampnet.data.history import history_summary
    from stampnet.data.labels import LabelTable
    from stampnet.data.readers import iter_alerts

    labels = LabelTable.from_csv(source / "labels.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alerts = list(iter_alerts(source, rejections=RejectionLog(warn=False), history=True))
    seen = {alert.candid: alert for alert in alerts}  # duplicates: one per candid
    alerts = list(seen.values())
    before = [history_summary(alert.history) for alert in alerts]
    print(
        f"{len(alerts)} alerts: {np.mean([sum(k.values()) > 0 for k in before]):.1%} with a "
        f"non-empty history (earlier detection {np.mean([k['detection'] > 0 for k in before]):.1%}"
        f", upper limit {np.mean([k['upper_limit'] > 0 for k in before]):.1%}, forced "
        f"{np.mean([k['forced'] > 0 for k in before]):.1%}); rows per alert, median "
        f"{np.median([len(alert.history) for alert in alerts]):.0f}"
    )
    first = {}
    for alert in sorted(alerts, key=lambda alert: (alert.jd, alert.candid)):
        label = labels.label_for(alert.object_id, alert.candid)
        if label in CLASSES and alert.object_id not in first:
            first[alert.object_id] = (alert, CLASSES.index(label))
    return list(first.values())


def arrays(examples, feature_index, length):
    from stampnet.data.history import pad_history

    padded = [pad_history(alert.history, length) for alert, _ in examples]
    return (
        {
            "stamps": np.stack([alert.stamps for alert, _ in examples]).astype("float32"),
            "stamp_mask": np.stack([alert.stamp_mask for alert, _ in examples]).astype("float32"),
            "features": np.stack([alert.metadata[feature_index] for alert, _ in examples]).astype(
                "float32"
            ),
            "light_curve": np.stack([rows for rows, _ in padded]),
            "light_curve_mask": np.stack([mask for _, mask in padded]).astype("float32"),
        },
        np.array([label for _, label in examples], np.int32),
    )


def split(examples, seed, test_fraction=0.3):
    """Per class, a seeded share of objects (one example each) for the test set."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for index in range(len(CLASSES)):
        members = [example for example in examples if example[1] == index]
        order = rng.permutation(len(members))
        cut = int(round(test_fraction * len(members)))
        test += [members[i] for i in order[:cut]]
        train += [members[i] for i in order[cut:]]
    return train, test


def macro_f1(labels, predicted):
    scores = []
    for index in range(len(CLASSES)):
        tp = np.sum((predicted == index) & (labels == index))
        fp = np.sum((predicted == index) & (labels != index))
        fn = np.sum((predicted != index) & (labels == index))
        scores.append(2 * tp / max(2 * tp + fp + fn, 1))
    return float(np.mean(scores))


def run(examples, seed, units, epochs, length, no_match):
    import keras

    from stampnet.features import FeatureStats, metadata_indices, resolve_feature_names
    from stampnet.models.stamp_classifier import build_stamp_classifier

    names = resolve_feature_names("alerce23")
    index = metadata_indices(names)
    train, test = split(examples, seed)
    x_train, y_train = arrays(train, index, length)
    x_test, y_test = arrays(test, index, length)
    train_values = np.stack([alert.metadata[index] for alert, _ in train])
    stats = FeatureStats.fit(names, train_values, no_match=no_match)
    keras.utils.set_random_seed(seed)
    model = build_stamp_classifier(
        class_names=CLASSES, feature_stats=stats, light_curve_units=units, dropout_rate=0.3
    )
    keep = [key for key in model.input]
    counts = np.bincount(y_train, minlength=len(CLASSES))
    weights = counts.sum() / (len(CLASSES) * np.maximum(counts, 1))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(
        {key: x_train[key] for key in keep}, y_train, sample_weight=weights[y_train],
        batch_size=32, epochs=epochs, verbose=0,
    )  # fmt: skip
    predicted = np.argmax(model.predict({key: x_test[key] for key in keep}, verbose=0), axis=1)
    return float(np.mean(predicted == y_test)), macro_f1(y_test, predicted), len(y_test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED / "data" / "ztf"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--units", type=int, default=32, help="light-curve branch width")
    parser.add_argument("--length", type=int, default=64, help="light-curve rows kept")
    parser.add_argument(
        "--no-match-as",
        choices=NO_MATCH_ENCODINGS,
        default=DEFAULT_NO_MATCH,
        help=f"how the features read a missing catalogue match (default: {DEFAULT_NO_MATCH})",
    )
    parser.add_argument(
        "--arms", choices=("both", "plain", "light_curve"), default="both",
        help="train without the branch, with it, or both (to run the arms in parallel)",
    )  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    examples = first_packets(Path(args.source))
    counts = np.bincount([label for _, label in examples], minlength=len(CLASSES))
    print("first packets of labelled objects:", dict(zip(CLASSES, counts.tolist(), strict=True)))
    arms = [(0, "stamps + features"), (args.units, "+ light-curve branch")]
    arms = {"both": arms, "plain": arms[:1], "light_curve": arms[1:]}[args.arms]
    for units, name in arms:
        results = np.array(
            [
                run(examples, seed, units, args.epochs, args.length, args.no_match_as)
                for seed in range(args.seeds)
            ]
        )
        accuracy, f1 = results[:, 0], results[:, 1]
        print(
            f"{name:>22}: accuracy {accuracy.mean():.3f} +- {accuracy.std():.3f}, macro-F1 "
            f"{f1.mean():.3f} +- {f1.std():.3f} ({int(results[0, 2])} test objects, "
            f"{args.seeds} seeds: {np.round(accuracy, 3).tolist()})"
        )
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
