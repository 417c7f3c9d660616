"""The light-curve branch on the built-in simulated data: sequence classifier with vs without it
(accuracy by number of detections), and the sequence VAE's light-curve reconstruction against
the mean baseline.

Trains the seq_classifier preset's architecture twice on the same data and seed (with and
without ``light_curve_units``), then the sequence VAE with the branch (cyclical KL annealing as
its preset), and prints test figures. Sized for a few minutes an arm on 2 CPU cores.

    python benchmarks/lightcurve_builtin.py [--data tfrecords/builtin] [--epochs 8]
"""

from __future__ import annotations

import argparse
import math
import time

from stampnet.features import DEFAULT_NO_MATCH, NO_MATCH_ENCODINGS


def datasets(data_dir, split, steps, batch_size, training, labelled=True):
    from stampnet.data.pipeline import sequence_dataset

    return sequence_dataset(
        data_dir, split, batch_size=batch_size, max_detections=steps, with_history=True,
        shuffle=training, seed=0, labelled_only=labelled,
    )  # fmt: skip


def keep_inputs(dataset, model):
    keys = set(model.input)
    return dataset.map(lambda inputs, label: ({k: inputs[k] for k in keys}, label))


def classifier_arm(data_dir, card, units, args):
    import keras

    from stampnet.data.card import feature_stats_for
    from stampnet.models.seq_classifier import build_seq_classifier

    keras.utils.set_random_seed(args.seed)
    stats = feature_stats_for(card, "alerce23", args.no_match_as)
    model = build_seq_classifier(
        card["class_names"], stats, dropout_rate=0.3, light_curve_units=units
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    train = datasets(data_dir, "train", args.steps, 32, True)
    model.fit(keep_inputs(train, model), epochs=args.epochs, verbose=0)
    seconds = time.perf_counter() - started
    test = datasets(data_dir, "test", args.steps, 64, False)
    return accuracy_by_detections(model, test, card["class_names"]), seconds


def accuracy_by_detections(model, dataset, class_names) -> list[dict]:
    """Test accuracy from each object's first n detections, as ``evaluate.py`` computes it
    (``runner.collect``): over every object (one with fewer than n uses all it has) and over
    the objects with at least n."""
    import numpy as np

    from stampnet.evaluation import metrics, runner

    collected = runner.collect(
        {"model": model}, dataset.as_numpy_iterator(), dataset_classes=class_names,
        model_classes=class_names, mistakes_per_model=0, sequences=True,
    )  # fmt: skip
    labels, by_detections = collected.labels, collected.probabilities_by_detections["model"]
    with_n = metrics.accuracy_by_detections(labels, by_detections, collected.num_detections)
    return [
        {
            "num_detections": n,
            "accuracy": float(np.mean(by_detections[:, n - 1] == labels)),
            "accuracy_with_n": with_n[n]["accuracy"],
            "objects_with_n": with_n[n]["count"],
        }
        for n in sorted(with_n)
    ]


def vae_arm(data_dir, args):
    import keras

    from stampnet.evaluation.light_curves import sequence_reconstruction_report
    from stampnet.models.seq_vae import build_seq_vae
    from stampnet.training.annealing import KLAnnealing

    keras.utils.set_random_seed(args.seed)
    vae = build_seq_vae(latent_dim=16, beta=0.0, seed=args.seed, light_curve_units=32)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    train = datasets(data_dir, args.vae_train_split, args.steps, 32, True, labelled=False)
    steps = math.ceil(sum(1 for _ in train.unbatch()) / 32)
    annealing = KLAnnealing(
        "cyclical", beta_max=0.5, ramp_epochs=4, steps_per_epoch=steps,
        total_epochs=args.vae_epochs,
    )  # fmt: skip
    started = time.perf_counter()
    vae.fit(train, epochs=args.vae_epochs, callbacks=[annealing], verbose=0)
    seconds = time.perf_counter() - started
    test = datasets(data_dir, "test", args.steps, 64, False, labelled=False)
    return sequence_reconstruction_report(vae, test), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="built dataset (default: the built-in)")
    parser.add_argument("--epochs", type=int, default=8, help="classifier epochs per arm")
    parser.add_argument("--vae-epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5, help="detections per object")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-match-as",
        choices=NO_MATCH_ENCODINGS,
        default=DEFAULT_NO_MATCH,
        help=f"how the features read a missing catalogue match (default: {DEFAULT_NO_MATCH})",
    )
    parser.add_argument("--skip-vae", action="store_true")
    parser.add_argument("--skip-classifier", action="store_true")
    parser.add_argument("--vae-train-split", default="train", help='e.g. "train[:25%%]"')
    args = parser.parse_args()

    from stampnet.data.card import load_card
    from stampnet.simulation.builtin import ensure_builtin_dataset

    data_dir = args.data or ensure_builtin_dataset()
    card = load_card(data_dir)
    print(f"{data_dir}: {card['num_objects']} objects, classes {card['class_names']}")
    print(f"history: {card.get('history', {}).get('alerts_with_history')} alerts with history")
    for units, name in () if args.skip_classifier else ((0, "stamps only"), (32, "+ light curve")):
        rows, seconds = classifier_arm(data_dir, card, units, args)
        by_n = ", ".join(f"{row['num_detections']}: {row['accuracy']:.3f}" for row in rows)
        print(f"seq_classifier {name:>14} ({seconds:.0f} s): test accuracy by detections {by_n}")
        print(f"  objects with >= n detections: {[row['objects_with_n'] for row in rows]}")
    if not args.skip_vae:
        report, seconds = vae_arm(data_dir, args)
        print(
            f"seq_vae + light curve ({seconds:.0f} s): light-curve MSE "
            f"{report['light_curve_mse']:.4f}"
            f" vs mean baseline {report['light_curve_baseline_mse']:.4f} (ratio "
            f"{report['light_curve_mse_ratio']:.3f}, {report['light_curve_rows']} rows); stamps "
            f"MSE ratio {report['mse_ratio']:.3f}; trained on {args.vae_train_split}, "
            f"{args.vae_epochs} epochs"
        )


if __name__ == "__main__":
    main()
