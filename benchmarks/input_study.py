"""The paper's input comparison on any dataset: channel subsets x features on/off x seeds.

Usage:
    python benchmarks/input_study.py [--data DIR | --size 400] [--channels all]
        [--features none alerce23] [--seeds 0 1 2] [--epochs 8] [--real ../shared/data/ztf]
        [--out input_study]
    python benchmarks/input_study.py --train-on-real [--real ../shared/data/ztf]
        [--max-epochs 80] [--patience 10] [--out input_study_real]

Trains the stamp classifier (``train.py --model stamp_classifier``) once per condition and seed,
with ``--channels`` (``all``: the 7 non-empty subsets of science, template, difference; or e.g.
``"difference;science,template,difference"``) crossed with ``--features``; scores each run on its
dataset's test split and, with ``--real``, on the labelled real alerts. Writes ``study.json``
(every run and the summary), ``study.csv`` (mean and std over seeds per condition) and
``study.png`` under ``--out``, and prints the table beside the paper's published number
(Carrasco-Davis et al. 2021), which comes from other data.

With ``--train-on-real`` no dataset is built or read: each condition is trained in memory on the
real sample's k-shot training pool (``kshot.object_split``, 471 alerts; an object-disjoint fifth of
it for early stopping) and scored on the 203 held-back evaluation alerts
(``stampnet.evaluation.input_study_real``); every finished run is appended to ``runs.jsonl``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

# oneDNN's CPU kernels, as ``stampnet train`` and ``train.py`` use (about 1.5x less CPU per epoch
# here); a value the user sets wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stampnet.evaluation.input_study import (  # noqa: E402
    PAPER_NUMBERS,
    all_channel_subsets,
    parse_channel_subsets,
    plot_study,
    rows_from_runs,
    run_study,
    study_table,
    summarise,
)
from stampnet.evaluation.input_study_report import markdown_table, plot_curves  # noqa: E402
from stampnet.features import DEFAULT_NO_MATCH, NO_MATCH_ENCODINGS  # noqa: E402
from stampnet.jsonable import json_ready  # noqa: E402
from stampnet.shared_data import shared_dir  # noqa: E402
from stampnet.training.config import SAVED_BEFORE  # noqa: E402

SHARED = shared_dir()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="dataset directory (default: built-in)")
    parser.add_argument("--size", default="400", help="built-in data size when --data is not set")
    parser.add_argument("--channels", default="all", help="channel subsets, ';'-separated")
    parser.add_argument("--features", nargs="+", default=["none", "alerce23"])
    parser.add_argument(
        "--no-match-as",
        choices=NO_MATCH_ENCODINGS,
        default=None,
        help="how the feature runs read a missing catalogue match (default: the recipe's; a "
        "study begun before round 14 clipped: resume it with clip)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--validation-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--real", default=None, help="also score on this labelled real sample")
    parser.add_argument("--out", default="input_study", help="output folder")
    parser.add_argument(
        "--train-on-real",
        action="store_true",
        help="train on the k-shot training pool of --real, score on its held-back alerts",
    )
    parser.add_argument("--max-epochs", type=int, default=80, help="with --train-on-real")
    parser.add_argument("--patience", type=int, default=10, help="with --train-on-real")
    parser.add_argument(
        "--from-runs",
        action="store_true",
        help="train nothing: summarise the finished runs under OUT/runs (a study cut short)",
    )
    args = parser.parse_args(argv)

    from stampnet.training.config import apply_overrides
    from stampnet.training.registry import get_spec

    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = apply_overrides(
        get_spec("stamp_classifier").preset(),
        {
            "data": {
                "data_dir": args.data,
                "builtin_size": str(args.size),
                **({"no_match": args.no_match_as} if args.no_match_as else {}),
            },
            "train": {
                "epochs": args.epochs,
                "steps_per_epoch": args.steps_per_epoch,
                "validation_steps": args.validation_steps,
                "batch_size": args.batch_size,
                "verbose": 0,
            },
        },
    )
    if args.train_on_real:
        return train_on_real(args, out, started)
    real_sample = None
    if args.real:
        from stampnet.evaluation.real_sample import load_real_sample

        real_sample = load_real_sample(args.real)
    if args.from_runs:
        rows = rows_from_runs(out / "runs")
        if not rows:
            raise SystemExit(f"no finished run (with evaluation.json) under {out / 'runs'}")
    else:
        rows = run_study(
            base,
            parse_channel_subsets(args.channels),
            args.features,
            args.seeds,
            out / "runs",
            real_sample=real_sample,
        )
    report = {
        "data": args.data or f"builtin size {args.size}",
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size,
        "no_match": base.data.no_match,
        "seeds": args.seeds,
        "real": args.real,
    }
    return write_outputs(out, rows, report, started, args.data or f"built-in data ({args.size})")


def train_on_real(args, out: Path, started: float) -> int:
    """The study on the real sample: train on its k-shot pool, score on its held-back alerts."""
    import numpy as np

    from stampnet.evaluation.input_study_real import (
        binomial_standard_error,
        bootstrap_intervals,
        run_real_study,
    )
    from stampnet.evaluation.real_sample import load_real_sample

    real = args.real or str(SHARED / "data" / "ztf")
    no_match = args.no_match_as or DEFAULT_NO_MATCH
    partial = out / "runs.jsonl"
    rows = read_runs(partial)
    if not args.from_runs:
        settings = {
            "max_epochs": args.max_epochs,
            "patience": args.patience,
            "batch_size": args.batch_size,
            "no_match": no_match,
        }
        check_settings(rows, settings, partial)
        done = {(row["channels"], row["features"], row["seed"]) for row in rows}
        if done:
            print(f"resuming: {len(done)} finished runs in {partial} are kept")
        sample = load_real_sample(real)

        def keep(row):
            with open(partial, "a") as handle:
                handle.write(json.dumps(json_ready(row)) + "\n")

        rows += run_real_study(
            sample,
            parse_channel_subsets(args.channels),
            args.features,
            args.seeds,
            on_row=keep,
            done=done,
            **settings,
        )
    if not rows:
        raise SystemExit(f"no finished run in {partial}")
    # Table order: the 7 subsets as all_channel_subsets lists them, images only first, by seed.
    order = {",".join(subset): index for index, subset in enumerate(all_channel_subsets())}
    rows.sort(
        key=lambda row: (order.get(row["channels"], 7), row["features"] != "none", row["seed"])
    )
    for row in rows:  # runs written before the intervals were recorded get them here
        for score, interval in bootstrap_intervals(row["real_confusion_matrix"]).items():
            row.setdefault(f"real_{score}_ci95", interval)
    alerts = rows[0]["eval_alerts"]
    widths = {
        score: float(np.mean([np.diff(row[f"real_{score}_ci95"])[0] for row in rows]))
        for score in ("accuracy", "macro_f1")
    }
    mean_accuracy = float(np.mean([row["real_accuracy"] for row in rows]))
    uncertainty = {
        "eval_alerts": alerts,
        "binomial_standard_error_at_mean_accuracy": binomial_standard_error(mean_accuracy, alerts),
        "mean_bootstrap_ci95_width": widths,
    }
    print(
        f"uncertainty of one run's score on {alerts} evaluation alerts: binomial standard error "
        f"{uncertainty['binomial_standard_error_at_mean_accuracy']:.3f} at accuracy "
        f"{mean_accuracy:.3f}; mean 95 % bootstrap interval width: accuracy "
        f"{widths['accuracy']:.3f}, macro-F1 {widths['macro_f1']:.3f}"
    )
    report = {
        "uncertainty": uncertainty,
        "data": f"{real}: k-shot training pool -> held-back evaluation alerts",
        "max_epochs": args.max_epochs,
        "patience": args.patience,
        "batch_size": args.batch_size,
        "no_match": no_match,
        "seeds": args.seeds,
    }
    return write_outputs(out, rows, report, started, f"the real sample ({real})")


def read_runs(path: Path) -> list[dict]:
    """The rows of a study's ``runs.jsonl`` (one finished run a line); none if it is absent."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_settings(rows: list, settings: dict, path: Path) -> None:
    """Refuses to resume a study whose finished runs were trained with other settings (how a
    missing catalogue match is read only matters to runs with features)."""
    for number, row in enumerate(rows, 1):
        # rows written before a setting was recorded: what runs then did (they clipped)
        made = {key: row.get(key, SAVED_BEFORE["data"].get(key)) for key in settings}
        wanted = dict(settings)
        if row["features"] == "none":
            made.pop("no_match", None)
            wanted.pop("no_match", None)
        if made != wanted:
            raise SystemExit(
                f"{path} line {number} ({row['channels']} {row['features']} seed {row['seed']}) "
                f"was trained with {made}, this study with {settings}: use another --out or "
                "remove that file"
            )


def write_outputs(out: Path, rows: list, report: dict, started: float, title: str) -> int:
    """Prints the tables; writes study.json (``report``, runs, summary), study.csv, study.md
    (mean +- std [bootstrap interval]), study.png and curves.png (validation loss per epoch)."""
    summary = summarise(rows)
    print(f"\ninput study on {title}:")
    print(study_table(summary))
    report = {
        **report,
        "runs": rows,
        "summary": summary,
        "paper": list(PAPER_NUMBERS),
        "seconds": time.perf_counter() - started,
    }
    (out / "study.json").write_text(json.dumps(json_ready(report), indent=1))
    with open(out / "study.csv", "w", newline="") as handle:
        fields = sorted({key for entry in summary for key in entry}, key=str)
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(summary)
    plot_study(summary, out / "study.png")
    table = markdown_table(rows)
    (out / "study.md").write_text(f"Input study on {title}\n\n{table}\n")
    print(table)
    if any("val_loss" in row for row in rows):
        plot_curves(rows, out / "curves.png")
    print(
        f"wrote {out}/study.json, study.csv, study.md, study.png, curves.png "
        f"({time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
