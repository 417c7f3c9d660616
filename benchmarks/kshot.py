"""The k-shot curve: fine-tuning on k real labelled alerts per class, from built-in or ALeRCE.

Usage:
    python benchmarks/kshot.py [--builtin-run runs/stamp_classifier-X] [--size 400 --epochs 6]
        [--starts builtin alerce2019 alerce2020] [--ks 0 10 50 all] [--seeds 0 1 2]
        [--steps 60] [--out kshot]

Starts: ``builtin`` is an images-only stamp classifier trained on the built-in simulated data
(``python train.py --model stamp_classifier --features none``; trained here unless
``--builtin-run`` gives one); ``alerce2019`` (images only) and ``alerce2020`` (26 metadata
features) are ALeRCE's published weights imported from ``../shared/reference`` as
``stampnet import-alerce`` does. The labelled alerts of ``../shared/data/ztf`` (heuristic
catalogue labels, see ``stampnet.evaluation.transfer.LABEL_NOTES``) are split by objectId into a
fixed evaluation set (``--eval-fraction`` of each class's objects) and a training pool; each start
is fine-tuned (every layer, ``--steps`` batches) on k alerts per class drawn from the pool, per
seed, and scored on the evaluation alerts. Writes ``kshot.json`` (every run, the summary, sizes,
seconds), ``kshot.csv`` (the summary) and ``kshot.png`` (the curve) under ``--out``; each finished
run is also appended to ``runs.jsonl`` as it ends, and ``--from-runs`` summarises that file alone
(a curve cut short).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stampnet.evaluation.kshot import (  # noqa: E402
    kshot_curve,
    kshot_table,
    object_split,
    plot_kshot,
    summarise_kshot,
)
from stampnet.jsonable import json_ready  # noqa: E402
from stampnet.shared_data import shared_dir  # noqa: E402

SHARED = shared_dir()

ALERCE_STARTS = {
    "alerce2019": "alerce_stamp_classifier_2019_images",
    "alerce2020": "alerce_stamp_classifier_2020",
}


def parse_k(text: str) -> int | None:
    if text == "all":
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"k must be >= 0 or 'all', received {text!r}")
    return value


def builtin_model(args, out: Path) -> Path:
    """The built-in start: ``--builtin-run`` (a run folder or .keras) or a fresh images-only run."""
    if args.builtin_run:
        path = Path(args.builtin_run)
        return path / "model.keras" if path.is_dir() else path
    from stampnet.training.config import apply_overrides
    from stampnet.training.registry import get_spec
    from stampnet.training.trainer import train

    config = apply_overrides(
        get_spec("stamp_classifier").preset(),
        {
            "data": {"builtin_size": str(args.size), "feature_set": "none"},
            "train": {
                "epochs": args.epochs,
                "seed": 0,
                "verbose": 2,
                "out": str(out / "builtin-none-seed0"),
            },
        },
    )
    return train(config).run_dir / "model.keras"


def start_models(args, out: Path) -> dict[str, Path]:
    from stampnet.models.alerce_import import import_alerce_checkpoint

    starts = {}
    for name in args.starts:
        if name == "builtin":
            starts[name] = builtin_model(args, out)
        elif name in ALERCE_STARTS:
            path = out / f"{name}.keras"
            if not path.is_file():
                folder = Path(args.reference) / ALERCE_STARTS[name]
                import_alerce_checkpoint(folder, name=name).save(path)
            starts[name] = path
        else:
            known = ", ".join(["builtin", *ALERCE_STARTS])
            raise SystemExit(f"unknown start {name!r}: expected one of {known}")
    return starts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default=str(SHARED / "data" / "ztf"), help="real sample folder")
    parser.add_argument("--reference", default=str(SHARED / "reference"), help="ALeRCE weights")
    parser.add_argument("--starts", nargs="+", default=["builtin", "alerce2019", "alerce2020"])
    parser.add_argument("--builtin-run", default=None, help="built-in run folder or .keras")
    parser.add_argument("--size", default="400", help="built-in data size for a fresh run")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of a fresh built-in run")
    parser.add_argument("--ks", type=parse_k, nargs="+", default=[0, 10, 50, None])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=60, help="fine-tuning batches per run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument(
        "--freeze-trunk", action="store_true", help="fine-tune only the dense layers"
    )
    parser.add_argument(
        "--label", default="", help="appended to each start's name in the rows (e.g. a recipe)"
    )
    parser.add_argument("--eval-fraction", type=float, default=0.3)
    parser.add_argument("--candids", default=None, help="file of candids: a subset of the sample")
    parser.add_argument("--out", default="kshot", help="output folder")
    parser.add_argument(
        "--from-runs",
        action="store_true",
        help="fine-tune nothing: summarise OUT/runs.jsonl (the finished runs of a curve cut short)",
    )
    args = parser.parse_args(argv)
    if args.from_runs:
        lines = (Path(args.out) / "runs.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        if not rows:
            raise SystemExit(f"no finished run in {Path(args.out) / 'runs.jsonl'}")
        return write_outputs(Path(args.out), rows, {"cut_short": True}, time.perf_counter())

    from stampnet.evaluation.real_sample import load_real_sample

    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    candids = None
    if args.candids:
        candids = [int(line) for line in Path(args.candids).read_text().split()]
    sample = load_real_sample(args.real, candids=candids)
    pool, held_out = object_split(sample, args.eval_fraction)
    print(
        f"real sample: {len(sample)} labelled alerts {sample.class_counts()}; training pool "
        f"{len(pool)} alerts, evaluation {len(held_out)} alerts of "
        f"{len(set(sample.object_ids[held_out].tolist()))} objects (disjoint by objectId)"
    )
    starts = start_models(args, out)
    partial = out / "runs.jsonl"  # one line per finished run, kept if the curve is cut short
    partial.write_text("")

    def keep(row):
        with open(partial, "a") as handle:
            handle.write(json.dumps(json_ready(row)) + "\n")

    rows = kshot_curve(
        {f"{name}{args.label}": path for name, path in starts.items()},
        sample,
        args.ks,
        args.seeds,
        eval_fraction=args.eval_fraction,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        freeze_trunk=args.freeze_trunk,
        on_row=keep,
    )
    report = {
        "real": args.real,
        "counts": sample.class_counts(),
        "pool_counts": sample.subset(pool).class_counts(),
        "eval_counts": sample.subset(held_out).class_counts(),
        "starts": {name: str(path) for name, path in starts.items()},
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "freeze_trunk": args.freeze_trunk,
        "seeds": args.seeds,
    }
    return write_outputs(out, rows, report, started)


def write_outputs(out: Path, rows: list[dict], report: dict, started: float) -> int:
    """Prints the table; writes kshot.json (``report`` + runs + summary), kshot.csv, kshot.png."""
    summary = summarise_kshot(rows)
    print("\nk-shot curve on the held-back real objects (mean +- std over seeds):")
    print(kshot_table(summary))
    seconds = time.perf_counter() - started
    report = {**report, "runs": rows, "summary": summary, "seconds": seconds}
    (out / "kshot.json").write_text(json.dumps(json_ready(report), indent=1))
    with open(out / "kshot.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    plot_kshot(summary, out / "kshot.png")
    print(f"wrote {out}/kshot.json, kshot.csv, kshot.png ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
