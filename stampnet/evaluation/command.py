"""Evaluate runs on a dataset split: metrics.json, figures and a self-contained report.html.

``stampnet evaluate RUN [RUN ...]`` (or ``python evaluate.py``). A RUN is a run folder
(``runs/<model>-<timestamp>/``) or a bare ``.keras`` file such as an ALeRCE import. Each run gets
``metrics.json``, ``predictions.npz`` and ``report.html`` in ``<run>/evaluation/<dataset>-<split>/``
(for a ``.keras`` file: beside it, or under ``--out``); several runs also get a comparison report in
``--out`` (default ``runs/comparison-<timestamp>/``), next to the published results (numbers from
other data, labelled as such).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
from pathlib import Path

import numpy as np

from stampnet.evaluation import reports
from stampnet.evaluation.comparison import write_comparison
from stampnet.evaluation.report import Report, write_metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders or .keras files")
    parser.add_argument("--data", default=None, help="dataset directory (default: the run's own)")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--out", default=None, help="folder of the comparison report")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="evaluate at most this many examples of the split",
    )
    parser.add_argument("--gallery-size", type=int, default=6, help="mistakes shown per model")
    parser.add_argument("--seed", type=int, default=0, help="UMAP seed")
    parser.add_argument("--umap-neighbors", type=int, default=15)
    parser.add_argument("--umap-min-dist", type=float, default=0.1)
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="autoencoders: also fit gradient boosting on the latent means and the features "
        "(train split) and score it on this split",
    )


def run(args: argparse.Namespace) -> int:
    options = EvaluationOptions.from_args(args)
    try:
        results = [
            evaluate_run(
                path, data_dir=args.data, split=args.split, out_dir=args.out, options=options
            )
            for path in args.runs
        ]
    except ValueError as error:  # e.g. a model refusing data it was not built for
        raise SystemExit(f"stampnet evaluate: {error}") from error
    for result in results:
        print(f"{result['run']}: {result['report']}")
    if len(results) > 1 or args.out:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = Path(args.out) if args.out else Path("runs") / f"comparison-{stamp}"
        print(f"comparison: {write_comparison(results, out_dir)}")
    return 0


@dataclasses.dataclass
class EvaluationOptions:
    """Knobs of an evaluation (all recorded in metrics.json).

    Args:
        batch_size: examples per model call.
        max_examples: stop after this many examples of the split (None: all).
        gallery_size: most confident mistakes shown per classifier.
        seed, umap_neighbors, umap_min_dist: UMAP parameters.
        baselines: fit gradient-boosting baselines for latent spaces (a pass over train).
    """

    batch_size: int = 64
    max_examples: int | None = None
    gallery_size: int = 6
    seed: int = 0
    umap_neighbors: int = 15
    umap_min_dist: float = 0.1
    baselines: bool = False

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, received {self.batch_size}")

    @classmethod
    def from_args(cls, args) -> EvaluationOptions:
        """The options of ``args`` (the flags of ``add_arguments``, one per field)."""
        return cls(**{field.name: getattr(args, field.name) for field in dataclasses.fields(cls)})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def evaluate_run(path, *, data_dir=None, split="test", out_dir=None, options=None) -> dict:
    """Evaluates one run on one split; writes its files and returns its metrics.

    Every model of the run gets the reports of its kind (``stampnet.evaluation.reports``).
    """
    from stampnet.data.card import load_card
    from stampnet.data.locate import resolve_data_dir
    from stampnet.evaluation import loading, runner

    options = options or EvaluationOptions()
    loaded = loading.load_run(path)
    if data_dir is None and loaded.path.is_file():
        raise ValueError(
            f"{loaded.path} is a bare .keras file with no record of its dataset: pass --data DIR "
            "(e.g. a dataset built with `stampnet build --source ../shared/data/ztf --labels "
            "../shared/data/ztf/labels.csv`)"
        )
    data_dir = resolve_data_dir(data_dir, run=loaded.path)
    card = load_card(data_dir)
    loading.check_data(loaded, card, data_dir)
    dataset_classes = tuple(card["class_names"])
    model_classes = loaded.class_names or dataset_classes
    sequences = loaded.dataset_kind == "sequences"

    collected = runner.collect(
        loaded.models,
        loading.split_batches(loaded, data_dir, split, card, options),
        dataset_classes=dataset_classes,
        model_classes=model_classes,
        mistakes_per_model=options.gallery_size,
        sequences=sequences,
    )
    target = loading.output_dir(loaded, data_dir, split, out_dir)
    report = Report(f"{loaded.name} on {Path(data_dir).name} / {split}")
    result = {
        "run": loaded.name,
        "run_path": str(loaded.path),
        "dataset": str(data_dir),
        "split": split,
        "dataset_kind": loaded.dataset_kind,
        "class_names": list(model_classes),
        "num_examples": int(collected.labels.size),
        "excluded": collected.excluded,
        "options": options.to_dict(),
        "evaluated_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "models": {},
        "labels": None if card.get("generator") else (card.get("labels") or {}).get("path"),
    }
    _describe(report, result, card)
    context = reports.ReportContext(report, collected, tuple(model_classes), options)
    if options.baselines:
        context.baseline_data = _baseline_data(loaded, data_dir, split, card, options)
    for name, role in collected.roles.items():
        kind = reports.model_kind(role, sequences)
        result["models"][name] = {"kind": kind, **reports.run_reports(context, name, kind)}
    _save_predictions(target / "predictions.npz", collected)
    for figure_name, png in context.figures.items():
        (target / f"{figure_name}.png").write_bytes(png)
    result["figures"] = sorted(f"{name}.png" for name in context.figures)
    result["metrics_path"] = str(write_metrics(result, target / "metrics.json"))
    result["report"] = str(report.write(target / "report.html"))
    result["confusion_png"] = {
        k: context.figures[f"confusion_{k}"] for k in collected.probabilities
    }
    result["arrays"] = {"labels": collected.labels, "probabilities": collected.probabilities}
    return result


def _describe(report: Report, result: dict, card: dict) -> None:
    report.paragraph(
        f"Run {result['run_path']} evaluated on {result['dataset']}, split "
        f"'{result['split']}': {result['num_examples']} labelled examples.",
        "meta",
    )
    if card.get("generator"):
        report.paragraph(f"Simulated data ({card['generator']}).", "meta")
    elif card.get("labels"):
        report.paragraph(
            f"Labels from {card['labels'].get('path')}. For the real ZTF sample these are "
            "heuristic catalogue cross-matches, not ground truth.",
            "note",
        )
    if result["excluded"]:
        excluded = ", ".join(f"{name}: {count}" for name, count in result["excluded"].items())
        report.paragraph(
            f"Examples of classes the model does not have were excluded ({excluded}).", "note"
        )


def _baseline_data(loaded, data_dir, split, card, options):
    """For ``reports.latent_baselines``: latent means, raw features and labels of a model on the
    train split and on the evaluated split (a second pass over each). A model that reads no
    features is compared with the default feature set (``alerce23``)."""
    from stampnet.evaluation import loading, runner
    from stampnet.features import DEFAULT_FEATURE_SET, FEATURE_SETS

    if not loaded.feature_names:
        features = tuple(FEATURE_SETS[DEFAULT_FEATURE_SET])
        loaded = dataclasses.replace(loaded, feature_names=features)

    def arrays(model, part):
        columns = {"z_mean": [], "features": [], "label": []}
        for inputs, labels in loading.split_batches(loaded, data_dir, part, card, options):
            model_inputs = {k: inputs[k] for k in loading.model_input_dims(model) or inputs}
            columns["z_mean"].append(runner.latent_mean(model(model_inputs, training=False)))
            columns["features"].append(np.asarray(inputs["features"]))
            columns["label"].append(np.asarray(labels))
        return {key: np.concatenate(values) for key, values in columns.items()}

    def data(name):
        model = loaded.models[name]
        return arrays(model, "train"), arrays(model, split)

    return data


def _save_predictions(path: Path, collected) -> None:
    """Everything the metrics are computed from, so that they can be recomputed without TF."""
    arrays = {"labels": collected.labels, "candid": collected.candid}
    arrays.update({f"probabilities/{k}": v for k, v in collected.probabilities.items()})
    arrays.update(
        {f"by_detections/{k}": v for k, v in collected.probabilities_by_detections.items()}
    )
    arrays.update({f"z_mean/{k}": v for k, v in collected.z_mean.items()})
    arrays.update({f"clusters/{k}": v for k, v in collected.clusters.items()})
    arrays.update(
        {f"reconstruction_error/{k}": v for k, v in collected.reconstruction_error.items()}
    )
    if collected.num_detections is not None:
        arrays["num_detections"] = collected.num_detections
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
