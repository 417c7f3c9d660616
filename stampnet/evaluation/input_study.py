"""The paper's input comparison: which stamps, and whether metadata features, a classifier needs.

Carrasco-Davis et al. (2021) compared the stamp classifier fed with the science, template and
difference stamps and their combinations, with and without the alert's metadata features.
``run_study`` trains the stamp classifier once per condition (channel subset x feature set) and seed
on any dataset through ``stampnet.training.trainer.train``, and records the test-split accuracy and
macro recall (and, given a ``RealSample``, the same on the labelled real alerts); ``summarise``
gives mean and standard deviation over seeds; ``study_table`` and ``plot_study`` show them beside
the paper's published numbers, labelled as numbers from other data.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from stampnet.constants import CHANNELS
from stampnet.evaluation.input_study_runs import (  # noqa: F401  (matrix_scores: re-exported)
    is_finished,
    matrix_scores,
    row_from_run,
    score_on_real,
    write_study_scores,
)

#: Published numbers we can cite, measured on ALeRCE's own labelled ZTF set (other data, other
#: splits): only the abstract's headline figure of the full model is given here. The paper's
#: per-input table is not reproduced because its numbers could not be checked for this code.
PAPER_NUMBERS = (
    {
        "channels": ",".join(CHANNELS),
        "features": "alerce23",
        "accuracy": 0.94,
        "source": "Carrasco-Davis et al. 2021 (AJ 162, 231; arXiv:2008.03309), abstract: ~94% "
        "accuracy on a balanced test set of ALeRCE's labelled ZTF alerts (other data)",
    },
)


def all_channel_subsets(channels: Sequence[str] = CHANNELS) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``channels``, singles first, in channel order."""
    return [
        subset
        for size in range(1, len(channels) + 1)
        for subset in itertools.combinations(channels, size)
    ]


def parse_channel_subsets(text: str | None) -> list[tuple[str, ...]]:
    """``"difference;science,template,difference"`` -> subsets; None or "all" -> every subset."""
    if text in (None, "", "all"):
        return all_channel_subsets()
    subsets = []
    for part in text.split(";"):
        subset = tuple(name.strip() for name in part.split(",") if name.strip())
        unknown = [name for name in subset if name not in CHANNELS]
        if not subset or unknown or len(set(subset)) != len(subset):
            raise ValueError(
                f"channel subset {part!r} must list distinct names from {CHANNELS}, "
                f"separated by commas (subsets separated by ';')"
            )
        subsets.append(subset)
    return subsets


def run_study(
    base_config,
    channel_subsets: Sequence[Sequence[str]],
    feature_sets: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    *,
    real_sample=None,
    train_fn: Callable | None = None,
    log=print,
) -> list[dict]:
    """Trains one stamp classifier per (channels, features, seed) and scores it.

    A condition whose run folder already holds a finished run (with its real-sample scores when
    ``real_sample`` is given) is read back instead of trained again, and one killed while
    training is resumed from its checkpoint: a study cut short resumes.

    Args:
        base_config: a ``RunConfig`` of the stamp classifier (data, epochs, ...); channels,
            feature set, seed and run folder are set per condition.
        channel_subsets: the stamps each condition sees.
        feature_sets: ``--features`` values (``none`` for images only).
        seeds: training seeds (weights, shuffling, augmentation); the outermost loop, so that a
            study cut short has every condition at its first seeds.
        out_dir: run folders go to ``out_dir/<channels>-<features>-seed<seed>``.
        real_sample: optional ``RealSample``; each model is also scored on it.
        train_fn: ``train(config) -> TrainResult`` (default ``stampnet.training.trainer.train``).

    Returns:
        One row per run (``input_study_runs.row_from_run``): channels, features, seed, test
        accuracy and macro recall, the validation-loss curve, the real sample's scores when
        given, the run folder and the CPU seconds of the runs trained here.
    """
    from stampnet.training.config import apply_overrides
    from stampnet.training.runs import CONFIG_NAME, MODEL_CARD_NAME

    if train_fn is None:
        from stampnet.training.trainer import train as train_fn
    if base_config.model != "stamp_classifier":
        raise ValueError(f"the input study trains stamp_classifier, received {base_config.model!r}")
    rows = []
    for seed, channels, features in itertools.product(seeds, channel_subsets, feature_sets):
        tag = f"{'+'.join(channels)}-{features}-seed{seed}"
        run_dir = Path(out_dir) / tag
        condition = apply_overrides(
            base_config,
            {
                "data": {"feature_set": features},
                "model_config": {"channels": tuple(channels)},
                "train": {"seed": int(seed)},
            },
        )
        check_same_setup(run_dir, condition)
        if is_finished(run_dir, real_sample is not None):
            rows.append(row_from_run(run_dir))
            log(f"{tag}: finished before, read back from {run_dir}")
            continue
        where = {"out": str(run_dir)}
        if (run_dir / CONFIG_NAME).is_file() and not (run_dir / MODEL_CARD_NAME).is_file():
            where = {"out": None, "resume": str(run_dir)}  # killed while training
        elif run_dir.exists():  # trained, killed before it was scored: train it again
            shutil.rmtree(run_dir)
        config = apply_overrides(condition, {"train": where})
        started = time.process_time()
        result = train_fn(config)
        scores = {}
        if real_sample is not None:
            scores = score_on_real(result.bundle.exports["classifier"].model, real_sample)
        write_study_scores(result.run_dir, {"cpu_seconds": time.process_time() - started, **scores})
        row = row_from_run(result.run_dir)
        rows.append(row)
        log(
            f"{tag}: test accuracy {row['test_accuracy']:.3f}, real accuracy "
            f"{row.get('real_accuracy', float('nan')):.3f} ({row['cpu_seconds']:.0f} CPU-s)"
        )
    return rows


#: What a study's runs must share with the condition resuming them (the data folder may move).
_SETUP_TRAIN_FIELDS = ("epochs", "batch_size", "steps_per_epoch", "validation_steps", "seed")


def _setup(config) -> dict:
    data = dataclasses.asdict(config.data)
    for where in ("data_dir", "builtin_size"):
        data.pop(where)
    if data["feature_set"] == "none":
        data.pop("no_match")  # images only: how a catalogue match is read does not matter
    train = {name: getattr(config.train, name) for name in _SETUP_TRAIN_FIELDS}
    return {"data": data, "model_config": dataclasses.asdict(config.model_config), "train": train}


def check_same_setup(run_dir: Path, condition) -> None:
    """Refuses to read back or resume a run of ``run_dir`` trained otherwise than ``condition``
    (another encoding of a missing catalogue match, other epochs, ...), naming what differs."""
    from stampnet.training.runs import CONFIG_NAME, load_run_config

    if not (run_dir / CONFIG_NAME).is_file():
        return
    made, wanted = _setup(load_run_config(run_dir)), _setup(condition)
    differs = [
        f"{section}.{name}: {made[section].get(name)!r} there, {value!r} here"
        for section, values in wanted.items()
        for name, value in values.items()
        if made[section].get(name) != value
    ]
    if differs:
        raise ValueError(
            f"{run_dir} was trained otherwise than this study asks ({'; '.join(differs)}): use "
            "another --out, pass the settings it was trained with, or remove that run"
        )


def rows_from_runs(runs_dir: str | Path) -> list[dict]:
    """The rows of ``run_study`` rebuilt from its finished run folders (``row_from_run``, with
    the real-sample scores of the runs that have them): summarises a study that was cut short.
    Folders without ``evaluation.json`` (runs still training) are left out."""
    if not Path(runs_dir).is_dir():
        raise ValueError(f"{runs_dir} is not a folder of input-study runs (OUT/runs)")
    from stampnet.training.runs import EVALUATION_NAME

    return [
        row_from_run(run_dir)
        for run_dir in sorted(Path(runs_dir).iterdir())
        if (run_dir / EVALUATION_NAME).is_file()
    ]


SCORES = (
    "test_accuracy",
    "test_macro_recall",
    "real_accuracy",
    "real_macro_recall",
    "real_macro_f1",
)


def summarise(rows: Sequence[Mapping]) -> list[dict]:
    """Mean and standard deviation (ddof 0) over seeds of every score, per condition."""
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for row in rows:
        groups.setdefault((row["channels"], row["features"]), []).append(row)
    summary = []
    for (channels, features), members in groups.items():
        entry = {"channels": channels, "features": features, "seeds": len(members)}
        for score in SCORES:
            values = [member[score] for member in members if score in member]
            if values:
                entry[f"{score}_mean"] = float(np.mean(values))
                entry[f"{score}_std"] = float(np.std(values))
        summary.append(entry)
    return summary


def study_table(summary: Sequence[Mapping], paper=PAPER_NUMBERS) -> str:
    """One line per condition (mean +- std over seeds), then the paper's numbers (other data)."""
    scores = [score for score in SCORES if any(f"{score}_mean" in entry for entry in summary)]
    lines = [
        f"{'channels':34s} {'features':9s} {'seeds':>5s} "
        + " ".join(f"{score:>18s}" for score in scores)
    ]
    for entry in summary:
        cells = " ".join(
            f"{entry[f'{score}_mean']:.3f} +- {entry[f'{score}_std']:.3f}".rjust(18)
            if f"{score}_mean" in entry
            else " " * 18
            for score in scores
        )
        lines.append(f"{entry['channels']:34s} {entry['features']:9s} {entry['seeds']:5d} {cells}")
    for number in paper:
        lines.append(
            f"{number['channels']:34s} {number['features']:9s} {'paper':>5s} "
            f"{number['accuracy']:18.3f}  <- {number['source']}"
        )
    return "\n".join(lines)


def plot_study(summary: Sequence[Mapping], path: str | Path, paper=PAPER_NUMBERS) -> Path:
    """Grouped bars (mean +- std) of test accuracy per channel subset, one bar per feature set,
    the real-sample accuracy as hollow markers, and the paper's numbers as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A study trained on the real sample has no test split: its bars are the real alerts' scores.
    bars = "test" if any("test_accuracy_mean" in entry for entry in summary) else "real"
    channel_sets = list(dict.fromkeys(entry["channels"] for entry in summary))
    feature_sets = list(dict.fromkeys(entry["features"] for entry in summary))
    width = 0.8 / len(feature_sets)
    figure, axes = plt.subplots(figsize=(1.4 * len(channel_sets) + 3, 4.2))
    for offset, features in enumerate(feature_sets):
        entries = {e["channels"]: e for e in summary if e["features"] == features}
        positions = np.arange(len(channel_sets)) + (offset - (len(feature_sets) - 1) / 2) * width
        means = [entries.get(c, {}).get(f"{bars}_accuracy_mean", np.nan) for c in channel_sets]
        stds = [entries.get(c, {}).get(f"{bars}_accuracy_std", 0.0) for c in channel_sets]
        label = f"{bars}, features {features}"
        axes.bar(positions, means, width, yerr=stds, capsize=3, label=label)
        real = [entries.get(c, {}).get("real_accuracy_mean", np.nan) for c in channel_sets]
        if bars == "test" and np.isfinite(real).any():
            axes.plot(positions, real, "o", mfc="none", color="k", label=None)
    for number in paper:
        axes.axhline(number["accuracy"], ls="--", color="grey", lw=1)
        axes.text(-0.45, number["accuracy"] + 0.01, "paper, full model (other data)", fontsize=7)
    axes.set_xticks(np.arange(len(channel_sets)))
    axes.set_xticklabels([c.replace(",", "\n") for c in channel_sets], fontsize=7)
    held_back = "accuracy, held-back real alerts"
    axes.set_ylabel("accuracy (o: labelled real sample)" if bars == "test" else held_back)
    axes.set_ylim(0, 1)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
