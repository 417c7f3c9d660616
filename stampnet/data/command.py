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
        help="alert file, directory or glob (Avro, ZTF-archive .tar.gz, Fink parquet; or own "
        "npy/npz/HDF5/parquet/feather/CSV+npy stamps, see --preset/--mapping); repeatable",
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
    add_reading_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace a finished dataset")
    parser.add_argument(
        "--scratch-dir",
        help="where to spill decoded alerts (default: .NAME.staging beside --out); kept when a "
        "build is interrupted, so that running the same build again resumes it",
    )
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


def add_reading_arguments(parser: argparse.ArgumentParser) -> None:
    """How to read a user's own stamp files (shared by ``build`` and ``classify``)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--mapping", help="JSON/YAML file saying which key/column is which channel, id, label"
    )
    group.add_argument(
        "--preset", help="a named mapping: deep-hits, alerce-table or btsbot (else guessed)"
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read pickled chunks (Deep-HiTS); unpickling runs code: only files you trust",
    )
    parser.add_argument(
        "--derive-snr",
        action="store_true",
        help="add an snr_difference channel: difference / (1.4826 MAD of its valid pixels)",
    )


def reader_from_args(args: argparse.Namespace):
    """The ``AlertReader`` the reading arguments describe."""
    from stampnet.data.mapping import resolve_mapping
    from stampnet.data.own import AlertReader

    return AlertReader(
        mapping=resolve_mapping(args.mapping, args.preset),
        allow_pickle=args.allow_pickle,
        derive_snr=args.derive_snr,
    )


def summary(card: dict, data_dir: str) -> str:
    """A few lines a user reads after a build: sizes, classes, rejections, where the card is."""
    lines = [
        f"Built {card['name']} in {data_dir} ({card.get('build_seconds', '?')} s): "
        f"{card['num_alerts']} alerts of {card['num_objects']} objects "
        f"({card['num_alerts_read']} read, {card.get('num_rejections', len(card['rejections']))} "
        "rejections).",
        f"Classes: {', '.join(card['class_names']) or '(none: all unlabelled)'}; stamps "
        f"{'x'.join(map(str, card['stamp_shape']))} ({', '.join(card['channels'])})",
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
    common = {
        "labels": args.labels,
        "seed": args.seed,
        "max_detections": args.max_detections,
        "split_fractions": args.split_fractions,
        "overwrite": args.overwrite,
        "scratch_dir": args.scratch_dir,
        "reader": reader_from_args(args),
    }
    if args.beam_workers or args.beam_option:
        from stampnet.data.beam_build import build_dataset_beam

        card = build_dataset_beam(
            args.source,
            args.out,
            **common,
            num_workers=max(args.beam_workers, 1),
            beam_args=args.beam_option,
        )
    else:
        from stampnet.data.build import build_dataset  # imports TensorFlow: only when building

        card = build_dataset(args.source, args.out, **common)
    print(summary(card, args.out))
    return 0
