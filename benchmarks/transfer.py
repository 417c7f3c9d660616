"""Built-in (simulated) training -> labelled real alerts: the transfer gap, per class.

Usage:
    python benchmarks/transfer.py [--size 400] [--epochs 8] [--seeds 0] [--crop-size 41]
        [--out transfer.json]
    python benchmarks/transfer.py --run runs/stamp_classifier-A --run runs/stamp_classifier-B
    python benchmarks/transfer.py --compare new-seed0.json new-seed1.json --against old.json
        [--features alerce23] [--out comparison.json]

Trains the stamp classifier on the built-in simulated data twice per seed (images only,
``--features none``; and with the default ``alerce23`` features), unless runs are given with
``--run``; then evaluates each model, and ALeRCE's published models (2020 with 26 features,
2019 images-only, imported from ``../shared/reference`` as ``stampnet import-alerce`` does), on the
labelled alerts of ``../shared/data/ztf`` (674 alerts with one of the five ALeRCE classes). Prints
recall/precision per class, accuracy and macro recall, the confusion matrices, and what the
heuristic labels mean for each number; writes it all (and the simulator version) to ``--out``.
Accuracy and macro recall come with 95 % intervals over resamplings of the sample's objects.

``--compare`` reads earlier ``--out`` files instead: the runs of one feature set (``--features``,
default alerce23; not ALeRCE's models) in the files given (e.g. a new simulator's seeds) against
those of ``--against`` (the old one's), on the same real alerts: the difference of their mean
accuracy and macro recall, its interval over resamplings of the sample's objects, and each
side's spread over its runs (seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stampnet.evaluation.real_sample import load_real_sample  # noqa: E402
from stampnet.evaluation.sample_intervals import paired_difference, run_scores  # noqa: E402
from stampnet.evaluation.transfer import (  # noqa: E402
    confusion_text,
    evaluate_on_sample,
    intervals_text,
    notes_for,
    reference_source_text,
    transfer_table,
)
from stampnet.features import (  # noqa: E402
    DEFAULT_FEATURE_SET,
    DEFAULT_NO_MATCH,
    FEATURE_SETS,
    NO_MATCH_ENCODINGS,
)
from stampnet.jsonable import json_ready  # noqa: E402
from stampnet.shared_data import shared_dir  # noqa: E402

SHARED = shared_dir()

ALERCE_REFERENCES = {
    "alerce_2020_features": "alerce_stamp_classifier_2020",
    "alerce_2019_images": "alerce_stamp_classifier_2019_images",
}


def run_name(
    feature_set: str, seed: int, crop_size: int | None = None, no_match: str | None = None
) -> str:
    """A training run's name; the crop and the encoding of a missing catalogue match only when
    they are not the recipe's (ALeRCE's 21 pixels; its clipping)."""
    crop = f"-crop{crop_size}" if crop_size else ""
    encoding = f"-nomatch{no_match}" if no_match and feature_set != "none" else ""
    return f"builtin-{feature_set}{crop}{encoding}-seed{seed}"


def builtin_config(feature_set: str, seed: int, args, runs_dir: Path):
    """The stamp classifier's training config for one run on the built-in data (or ``--data``)."""
    from stampnet.training.config import apply_overrides
    from stampnet.training.registry import get_spec

    overrides = {
        "data": {"builtin_size": str(args.size), "data_dir": args.data, "feature_set": feature_set},
        "train": {
            "epochs": args.epochs,
            "seed": seed,
            "verbose": 2,
            "runs_dir": str(runs_dir),
            "out": str(runs_dir / run_name(feature_set, seed, args.crop_size, args.no_match_as)),
        },
    }
    if args.no_match_as:
        overrides["data"]["no_match"] = args.no_match_as
    if args.crop_size:
        overrides["model_config"] = {"crop_size": args.crop_size}
    return apply_overrides(get_spec("stamp_classifier").preset(), overrides)


def train_builtin(feature_set: str, seed: int, args, runs_dir: Path) -> Path:
    """One stamp-classifier run on the built-in data; returns its ``model.keras``."""
    from stampnet.training.trainer import train

    result = train(builtin_config(feature_set, seed, args, runs_dir))
    return result.run_dir / "model.keras"


def alerce_models(reference_dir: Path) -> dict:
    from stampnet.models.alerce_import import import_alerce_checkpoint

    models = {}
    for name, folder in ALERCE_REFERENCES.items():
        if (reference_dir / folder).is_dir():
            models[name] = import_alerce_checkpoint(reference_dir / folder, name=name)
        else:
            print(f"(skipping {name}: {reference_dir / folder} not found)")
    return models


def data_generator(model) -> str | None:
    """The ``generator`` of the dataset card of the data a run was trained on (simulator version
    and source), as the run's model card recorded it; for a model card without it, the dataset's
    card if it is still the one the run read. None for ALeRCE's models, bare model files, and
    runs whose dataset was rebuilt since."""
    from stampnet.data.card import card_path, file_sha256, load_card
    from stampnet.data.locate import run_data_dir

    if not isinstance(model, (str, Path)):
        return None
    run = Path(model).parent if Path(model).suffix == ".keras" else Path(model)
    model_card = run / "model_card.json"
    recorded = json.loads(model_card.read_text()).get("data", {}) if model_card.is_file() else {}
    if recorded.get("generator"):
        return recorded["generator"]
    data_dir = run_data_dir(run)
    if data_dir is None or not card_path(data_dir).is_file():
        return None
    if recorded.get("card_sha256") not in (None, file_sha256(card_path(data_dir))):
        return None  # the built-in data were rebuilt (another simulator) after this run
    return load_card(data_dir).get("generator")


def simulator_version(generators) -> str | None:
    """The simulator version the evaluated runs were trained on, when they agree (round 8's
    JSONs wrote the code's version, which is wrong for ``--run`` and ``--data`` of another)."""
    versions = {g.split()[1] for g in generators if g and g.startswith("stampnet.simulation ")}
    return versions.pop() if len(versions) == 1 else None


def compared_runs(paths, feature_set: str, sample) -> tuple[list[str], np.ndarray]:
    """(names, (runs, alerts) predictions) of the runs reading ``feature_set`` in the ``--out``
    files ``paths`` (built-in or ``--run`` ones, not ALeRCE's), checked to be of ``sample``'s
    alerts in its order."""
    wanted = list(FEATURE_SETS[feature_set])
    names, predictions = [], []
    for path in paths:
        report = json.loads(Path(path).read_text())
        candids = report["real_sample"].get("candids")
        if candids is not None and candids != sample.candids.tolist():
            raise ValueError(f"{path}: its results are of other real alerts than this sample's")
        for name, result in report["results"].items():
            if name.lower().startswith("alerce") or result["feature_names"] != wanted:
                continue  # ALeRCE's models are beside every report, not what is compared
            supports = [result["per_class"][c]["support"] for c in sample.class_names]
            if len(result["predicted"]) != len(sample) or supports != list(
                np.bincount(sample.labels, minlength=len(sample.class_names))
            ):
                raise ValueError(f"{path}: {name} was evaluated on other real alerts")
            names.append(f"{Path(path).name}:{name}")
            predictions.append(result["predicted"])
    if not names:
        raise ValueError(f"no run reading {feature_set!r} in {list(map(str, paths))}")
    return names, np.array(predictions, np.int64)


def compare(args) -> int:
    """``--compare``: the runs of some ``--out`` files against those of others."""
    feature_set = args.features[0] if len(args.features) == 1 else DEFAULT_FEATURE_SET
    sample = load_real_sample(args.real)
    sides = {
        side: compared_runs(paths, feature_set, sample)
        for side, paths in (("compared", args.compare), ("against", args.against))
    }
    classes = len(sample.class_names)
    spread = {}
    for side, (names, predictions) in sides.items():
        scores = run_scores(sample.labels, predictions, classes)
        accuracy, recall = scores["accuracy"], scores["macro_recall"]
        spread[side] = {"runs": names, **scores}
        print(
            f"{side}: {len(names)} runs ({feature_set}); accuracy {accuracy.mean():.3f} ± "
            f"{accuracy.std():.3f}, macro recall {recall.mean():.3f} ± {recall.std():.3f} "
            "(mean ± std over the runs)"
        )
    difference = paired_difference(
        sample.labels, sides["compared"][1], sides["against"][1], sample.object_ids, classes
    )
    for name, part in difference.items():
        low, high = part["interval"]
        print(
            f"{name.replace('_', ' ')}: compared - against = {part['difference']:+.3f}, 95 % "
            f"[{low:+.3f}, {high:+.3f}] over resamplings of the {np.unique(sample.object_ids).size}"
            f" objects; above zero in {100 * part['share_above_zero']:.0f} % of them"
        )
    report = {
        "features": feature_set,
        "real_sample": {"path": args.real, "counts": sample.class_counts()},
        "runs": spread,
        "difference": difference,
    }
    Path(args.out).write_text(json.dumps(json_ready(report), indent=1))
    print(f"wrote {args.out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default=str(SHARED / "data" / "ztf"), help="real sample folder")
    parser.add_argument("--reference", default=str(SHARED / "reference"), help="ALeRCE weights")
    parser.add_argument("--size", default="400", help="built-in data size (objects, or default)")
    parser.add_argument("--data", default=None, help="train on this dataset instead of built-in")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs per run")
    parser.add_argument(
        "--crop-size",
        type=int,
        default=None,
        help="stamp crop the runs see (default: the recipe's 21 px; 41 or 63 show more context)",
    )
    parser.add_argument(
        "--no-match-as",
        choices=NO_MATCH_ENCODINGS,
        default=None,
        help="how the feature runs read a missing catalogue match (default: the recipe's, "
        f"{DEFAULT_NO_MATCH}); named in the runs' names when given",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument(
        "--features", nargs="+", default=["none", "alerce23"], help="feature sets to train with"
    )
    parser.add_argument("--run", action="append", default=[], help="evaluate this run instead")
    parser.add_argument("--runs-dir", default=None, help="keep the trained runs here")
    parser.add_argument("--no-alerce", action="store_true", help="leave ALeRCE's models out")
    parser.add_argument("--out", default="transfer.json", help="JSON results")
    parser.add_argument(
        "--compare", nargs="+", default=None, help="earlier --out files: the runs to compare"
    )
    parser.add_argument(
        "--against", nargs="+", default=None, help="earlier --out files: the runs compared with"
    )
    args = parser.parse_args(argv)
    if bool(args.compare) != bool(args.against):
        parser.error("--compare and --against go together")
    if args.compare:
        return compare(args)

    started = time.perf_counter()
    sample = load_real_sample(args.real)
    print(f"real sample: {len(sample)} labelled alerts {sample.class_counts()} from {args.real}")
    models = {}
    scratch = tempfile.TemporaryDirectory(prefix="transfer-runs-")
    runs_dir = Path(args.runs_dir or scratch.name)
    for run in args.run:
        path = Path(run)
        models[path.name] = path / "model.keras" if path.is_dir() else path
    if not args.run:
        for seed in args.seeds:
            for feature_set in args.features:
                name = run_name(feature_set, seed, args.crop_size, args.no_match_as)
                models[name] = train_builtin(feature_set, seed, args, runs_dir)
    if not args.no_alerce:
        models.update(alerce_models(Path(args.reference)))

    results = [evaluate_on_sample(model, sample, name=name) for name, model in models.items()]
    print("\nrecall/precision per class on the labelled real sample (support in brackets):")
    print(transfer_table(results))
    print("\n95 % intervals over resamplings of the sample's objects (all alerts of each):")
    print(intervals_text(results))
    for result in results:
        print("\n" + confusion_text(result))
        strengths = ", ".join(
            f"{name}: acc {part['accuracy']:.3f} on {part['alerts']}"
            for name, part in result["by_strength"].items()
        )
        print(f"  by label strength: {strengths}")
        print(reference_source_text(result))
    print("\nwhat the heuristic labels mean for these numbers:")
    notes = dict.fromkeys(note for result in results for note in notes_for(result))
    for note in notes:
        print(f"  - {note}")

    generators = {name: data_generator(model) for name, model in models.items()}
    report = {
        "simulator_version": simulator_version(generators.values()),
        "builtin_size": None if args.run or args.data else args.size,  # --data: its own size
        "data": args.data,
        "epochs": None if args.run else args.epochs,  # runs given with --run: see their configs
        "crop_size": None if args.run else args.crop_size,  # None: the recipe's
        # the feature runs' encoding (None: none trained); each result records its model's own
        "no_match": None
        if args.run or set(args.features) == {"none"}
        else (args.no_match_as or DEFAULT_NO_MATCH),
        "seeds": None if args.run else args.seeds,
        "real_sample": {
            "path": args.real,
            "counts": sample.class_counts(),
            "candids": sample.candids,  # the order of every result's "predicted"
        },
        "results": {
            result["name"]: {
                **result,
                "notes": notes_for(result),
                "data_generator": generators[result["name"]],
            }
            for result in results
        },
        "seconds": time.perf_counter() - started,
    }
    Path(args.out).write_text(json.dumps(json_ready(report), indent=1))
    print(f"\nwrote {args.out} ({report['seconds']:.0f} s)")
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
