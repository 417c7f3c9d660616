"""Build sharded TFRecord datasets (TFDS ``ztf_alerts``: alerts and sequences) from alert files.

Example:
    stampnet build --source ../shared/data/ztf --labels ../shared/data/ztf/labels.csv \\
        --out tfrecords/ztf_sample
"""

from __future__ import annotations

import argparse

from stampnet.data.builder import DEFAULT_STORED_DETECTIONS
from stampnet.data.splits import DEFAULT_SPLIT_FRACTIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        action="append",
        required=True,
        help="alert file, directory or glob (Avro, ZTF-archive .tar.gz, Fink parquet); repeatable",
    )
    parser.add_argument("--labels", help="labels CSV with columns objectId[,candid],label")
    parser.add_argument("--out", default="tfrecords/ztf_sample", help="data directory to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-object split")
    parser.add_argument(
        "--max-detections",
        type=int,
        default=DEFAULT_STORED_DETECTIONS,
        help="alerts stored per object in the sequences config",
    )
    parser.add_argument(
        "--split-fractions",
        type=float,
        nargs=3,
        default=DEFAULT_SPLIT_FRACTIONS,
        metavar=("TRAIN", "VALIDATION", "TEST"),
        help="fractions of the objects of every label per split",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a finished dataset")
    parser.add_argument("--scratch-dir", help="where to spill decoded alerts (default: tmp)")
    parser.add_argument(
        "--beam-workers",
        type=int,
        default=0,
        help="build as an Apache Beam pipeline with N DirectRunner worker processes (needs the "
        "beam extra; stampnet.data.beam_build); 0: the single-process build",
    )
    parser.add_argument(
        "--beam-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="a Beam pipeline option, repeatable, e.g. --beam-option=--runner=FlinkRunner "
        "--beam-option=--flink_master=HOST:8081 (any Beam runner; implies a Beam build)",
    )


def summary(card: dict, data_dir: str) -> str:
    """A few lines a user reads after a build: sizes, classes, rejections, where the card is."""
    lines = [
        f"Built {card['name']} in {data_dir} ({card.get('build_seconds', '?')} s): "
        f"{card['num_alerts']} alerts of {card['num_objects']} objects "
        f"({card['num_alerts_read']} read, {len(card['rejections'])} rejections).",
        f"Classes: {', '.join(card['class_names']) or '(none: all unlabelled)'}",
    ]
    for config, splits in card["counts"].items():
        for split in ("train", "validation", "test"):
            per_label = splits.get(split, {})
            detail = ", ".join(f"{label} {count}" for label, count in sorted(per_label.items()))
            lines.append(f"  {config:9s} {split:10s} {sum(per_label.values()):6d}  ({detail})")
    for reason, count in sorted(card["rejection_counts"].items()):
        lines.append(f"  rejected: {count} x {reason}")
    lines.append(f"Card: {data_dir}/dataset_card.json")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.beam_workers or args.beam_option:
        from stampnet.data.beam_build import build_dataset_beam

        card = build_dataset_beam(
            args.source,
            args.out,
            labels=args.labels,
            seed=args.seed,
            max_detections=args.max_detections,
            split_fractions=args.split_fractions,
            overwrite=args.overwrite,
            num_workers=max(args.beam_workers, 1),
            beam_args=args.beam_option,
        )
        print(summary(card, args.out))
        return 0
    from stampnet.data.build import build_dataset  # imports TensorFlow: only when building

    card = build_dataset(
        args.source,
        args.out,
        labels=args.labels,
        seed=args.seed,
        max_detections=args.max_detections,
        split_fractions=args.split_fractions,
        overwrite=args.overwrite,
        scratch_dir=args.scratch_dir,
    )
    print(summary(card, args.out))
    return 0
