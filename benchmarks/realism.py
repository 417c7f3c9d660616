"""How real do simulated alerts look? Side-by-side statistics and a real-vs-simulated classifier.

Usage: python benchmarks/realism.py [--objects 300] [--seed 0] [--real ../shared/data/ztf/alerts]
       [--labelled ../shared/data/ztf] [--stream-classes-from probabilities.csv]
       [--out realism.json]

Both samples go through the same reader (``stampnet.data.readers.iter_alerts``). Prints quantiles
(5, 25, 50, 75, 95%) of stamp statistics and candidate fields, then the cross-validated ROC AUC of
a gradient-boosting classifier told to separate real from simulated alerts from stamp statistics
(0.5 = indistinguishable, 1.0 = trivially separable): once from the ALeRCE-normalised 21x21 crops
(what the models see), once adding raw levels (sky, noise) as well, and once from the 23 candidate
fields that a model with the default ``alerce23`` features reads. Then the same AUC per class:
the real alerts that ``labels.csv`` puts in a class (read from ``--labelled``, the whole sample)
against the simulated alerts of that class, so that the simulator's weakest classes show. Last,
the same classifier between the real alerts of the two nights that give ``--real`` most of its
alerts: how far apart two real samples of different nights are by the same statistics. With
``--stream-classes-from``, the real stream also meets the simulated alerts at its own class mix,
its unlabelled alerts classed by a model's probabilities.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from stampnet.constants import ALERCE_CLASSES, CHANNELS
from stampnet.data.labels import LabelTable
from stampnet.data.readers import RejectionLog, iter_alerts
from stampnet.features import ALERCE23, METADATA_FIELDS
from stampnet.shared_data import shared_dir
from stampnet.simulation.simulate import simulate

QUANTILES = (5, 25, 50, 75, 95)
FIELDS = ("magpsf", "sigmapsf", "diffmaglim", "fwhm", "sgscore1", "distpsnr1", "distnr", "rb")
CROP = slice(21, 42)


def minmax(stamps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Numpy twin of StampPreprocessing(crop_size=21, normalisation='minmax')."""
    crop, valid = stamps[CROP, CROP], mask[CROP, CROP]
    big = np.where(valid, crop, np.inf).min(axis=(0, 1))
    shifted = np.where(valid, crop - big, 0.0)
    top = shifted.max(axis=(0, 1))
    return np.where(valid & (top > 0), shifted / np.where(top > 0, top, 1.0), 0.0)


def robust_sigma(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values)))) if values.size else np.nan


def fwhm_from_peak(difference: np.ndarray, mask: np.ndarray) -> float:
    """Gaussian FWHM from flux / peak of the central source: sigma^2 = F / (2 pi peak)."""
    box, valid = difference[27:36, 27:36], mask[27:36, 27:36]
    if not valid.all():
        return np.nan
    background = np.median(difference[mask])
    sign = 1.0 if box[3:6, 3:6].sum() >= background * 9 else -1.0
    core = sign * (box - background)
    flux, peak = core.sum(), core.max()
    if flux <= 0 or peak <= 0:
        return np.nan
    return float(2.3548 * np.sqrt(flux / (2 * np.pi * peak)))


def alert_statistics(alert) -> dict:
    stamps = alert.stamps.astype(np.float64)
    mask = alert.stamp_mask
    stats = {}
    normalised = minmax(stamps, mask)
    for index, channel in enumerate(CHANNELS):
        valid = stamps[..., index][mask[..., index]]
        stats[f"{channel}_level"] = float(np.median(valid)) if valid.size else np.nan
        stats[f"{channel}_sigma"] = robust_sigma(valid)
        pixels = normalised[..., index].ravel()
        for q in QUANTILES:
            stats[f"{channel}_norm_q{q}"] = float(np.percentile(pixels, q))
        stats[f"{channel}_norm_mean"] = float(pixels.mean())
        stats[f"{channel}_norm_std"] = float(pixels.std())
        centre = normalised[8:13, 8:13, index].mean()
        stats[f"{channel}_norm_centre"] = float(centre)
    truncated = tuple(alert.original_shape) != (63, 63)
    stats["truncated"] = float(truncated)
    rows, cols = alert.original_shape
    stats["has_nan"] = float((~mask[:rows, :cols]).any()) if not truncated else np.nan
    stats["psf_fwhm_image"] = fwhm_from_peak(stamps[..., 2], mask[..., 2])
    for name in FIELDS:
        stats[name] = float(alert.metadata[METADATA_FIELDS.index(name)])
    for name in ALERCE23:
        stats[f"field_{name}"] = float(alert.metadata[METADATA_FIELDS.index(name)])
    return stats


def collect(source, limit=None, labels: LabelTable | None = None, labelled_only=True) -> list[dict]:
    """Statistics of every alert of ``source`` (the first ``limit``), each row with the alert's
    ``night``; with ``labels``, each row carries its ``label`` and, unless ``labelled_only`` is
    false, only the alerts labelled with one of the five classes are kept."""
    log = RejectionLog()
    rows, seen = [], set()
    for alert in iter_alerts(source, rejections=log):
        if alert.candid in seen:
            continue  # the same alert stored twice (schema_versions/)
        seen.add(alert.candid)
        label = labels.label_for(alert.object_id, alert.candid) if labels else None
        if labels and labelled_only and label not in ALERCE_CLASSES:
            continue
        jd = float(alert.metadata[METADATA_FIELDS.index("jd")])
        night = observing_night(jd)
        rows.append(
            {**alert_statistics(alert), "label": label, "night": night, "candid": alert.candid}
        )
        if limit and len(rows) >= limit:
            break
    return rows


def observing_night(jd: float) -> int:
    """The Palomar night of ``jd``, as an integer Julian day: the day boundary at 20:00 UTC
    (local noon in winter, 13:00 in summer; daylight either way), not at JD's own 12:00 UTC,
    which falls in the middle of the night there."""
    return int(np.floor(jd - 1.0 / 3.0)) if np.isfinite(jd) else -1


def quantile_text(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & (values > -900)]
    if values.size == 0:
        return "n/a"
    return " ".join(f"{v:8.3g}" for v in np.percentile(values, QUANTILES))


def print_table(real: list[dict], simulated: list[dict]) -> None:
    print(f"{'statistic':28s} {'sample':5s} quantiles {QUANTILES}")
    rows = [f"{c}_{s}" for c in CHANNELS for s in ("level", "sigma")]
    rows += [f"{c}_norm_q{q}" for c in CHANNELS for q in (25, 50, 75)]
    rows += [f"{c}_norm_mean" for c in CHANNELS] + ["psf_fwhm_image", *FIELDS]
    for name in rows:
        for tag, sample in (("real", real), ("sim", simulated)):
            print(f"{name:28s} {tag:5s} {quantile_text([r[name] for r in sample])}")
    for name in ("has_nan", "truncated"):
        for tag, sample in (("real", real), ("sim", simulated)):
            values = np.array([r[name] for r in sample], dtype=np.float64)
            print(f"{name:28s} {tag:5s} fraction {np.nanmean(values):.3f}")


def classifier_auc(real, simulated, names, simulated_weights=None) -> tuple[float, float]:
    """5-fold CV ROC AUC of real against simulated; ``simulated_weights`` reweights the simulated
    rows in training and in the AUC (e.g. to the real sample's class mix)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    features = np.array([[r[n] for n in names] for r in real + simulated], dtype=np.float64)
    target = np.r_[np.ones(len(real)), np.zeros(len(simulated))]
    weights = np.ones(len(target))
    if simulated_weights is not None:
        weights[len(real) :] = simulated_weights
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = []
    for train, test in folds.split(features, target):
        model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=0)
        model.fit(features[train], target[train], sample_weight=weights[train])
        probability = model.predict_proba(features[test])[:, 1]
        scores.append(roc_auc_score(target[test], probability, sample_weight=weights[test]))
    return float(np.mean(scores)), float(np.std(scores))


def class_mix_weights(real_labelled, simulated) -> np.ndarray:
    """Weights that give the simulated alerts the labelled real sample's class mix."""
    real = np.array([row["label"] for row in real_labelled])
    sim = np.array([row["label"] for row in simulated])
    weights = np.zeros(len(sim))
    for name in ALERCE_CLASSES:
        if (sim == name).any():
            weights[sim == name] = (real == name).mean() / (sim == name).mean()
    return weights * len(sim) / weights.sum()


def univariate_aucs(real, simulated, names) -> list[tuple[str, float]]:
    from sklearn.metrics import roc_auc_score

    target = np.r_[np.ones(len(real)), np.zeros(len(simulated))]
    scores = []
    for name in names:
        values = np.array([r[name] for r in real + simulated], dtype=np.float64)
        finite = np.isfinite(values)
        auc = roc_auc_score(target[finite], values[finite])
        scores.append((name, max(auc, 1.0 - auc)))
    return sorted(scores, key=lambda item: -item[1])


NORMALISED = [f"{c}_norm_{s}" for c in CHANNELS for s in ("mean", "std", "centre")]
NORMALISED += [f"{c}_norm_q{q}" for c in CHANNELS for q in QUANTILES]
RAW = [f"{c}_{s}" for c in CHANNELS for s in ("level", "sigma")]
#: What a model with the default features reads besides the stamps: the 23 candidate fields.
FIELDS23 = [f"field_{name}" for name in ALERCE23]
FEATURE_GROUPS = {
    "normalised": NORMALISED,
    "normalised+raw": NORMALISED + RAW,
    "alerce23_fields": FIELDS23,
}
#: Fewer examples of either side than this and a class's AUC is not computed (5 folds).
MIN_PER_CLASS = 10


def per_class_aucs(real_labelled, simulated, names) -> dict[str, dict]:
    """Real-vs-simulated AUC within each class: label-matched real alerts vs simulated ones."""
    result = {}
    for class_name in ALERCE_CLASSES:
        real = [row for row in real_labelled if row["label"] == class_name]
        sim = [row for row in simulated if row["label"] == class_name]
        entry = {"real": len(real), "simulated": len(sim)}
        if min(len(real), len(sim)) >= MIN_PER_CLASS:
            entry["auc"], entry["auc_std"] = classifier_auc(real, sim, names)
            entry["most_separating"] = univariate_aucs(real, sim, names)[:3]
        result[class_name] = entry
    return result


def stream_classes(real, probabilities_csv) -> list[dict]:
    """The rows of the real stream, each with one of the five classes: its label when it has
    one, else the most probable class in ``probabilities_csv`` (``candid`` and ``p_<class>``
    columns, as ``stampnet.inference`` writes them and ALeRCE's reference probabilities hold;
    rows marked ``skipped`` are not read). Rows with neither are left out."""
    import pandas as pd

    table = pd.read_csv(probabilities_csv)
    if "skipped" in table:
        table = table[table["skipped"] == 0]
    columns = [f"p_{name}" for name in ALERCE_CLASSES]
    missing = [column for column in columns if column not in table]
    if missing:
        raise ValueError(f"{probabilities_csv}: no columns {missing} (expected candid, p_<class>)")
    best = np.asarray(ALERCE_CLASSES)[table[columns].to_numpy().argmax(axis=1)]
    predicted = dict(zip(table["candid"].astype(np.int64), best, strict=True))
    rows = []
    for row in real:
        label = row["label"] if row["label"] in ALERCE_CLASSES else predicted.get(row["candid"])
        if label is not None:
            rows.append({**row, "label": str(label)})
    return rows


def realism_report(real, real_labelled, simulated, stream=None) -> dict:
    """Overall AUC (``real`` vs ``simulated``) and per-class AUC for each feature group, and the
    same classifier between the real sample's two largest nights (``between_nights``). With
    ``stream`` (``stream_classes``), also the real stream against the simulated alerts weighted
    to its class mix."""
    report = {"real": len(real), "real_labelled": len(real_labelled), "simulated": len(simulated)}
    mix_weights = class_mix_weights(real_labelled, simulated)
    stream_weights = class_mix_weights(stream, simulated) if stream else None
    for group, names in FEATURE_GROUPS.items():
        mean, std = classifier_auc(real, simulated, names)
        matched, matched_std = classifier_auc(real_labelled, simulated, names, mix_weights)
        report[group] = {
            "auc": mean,
            "auc_std": std,
            # The labelled real alerts against the simulated ones weighted to their class mix:
            # what is left when the two samples' class proportions cannot separate them.
            "labelled_class_matched_auc": matched,
            "labelled_class_matched_auc_std": matched_std,
            "most_separating": univariate_aucs(real, simulated, names)[:8],
            "per_class": per_class_aucs(real_labelled, simulated, names),
        }
        if stream:
            # The whole stream at its class mix, the unlabelled alerts' classes as a model gives
            # them: what is left of the overall figure when the class mix cannot separate.
            matched, matched_std = classifier_auc(stream, simulated, names, stream_weights)
            report[group]["stream_class_matched_auc"] = matched
            report[group]["stream_class_matched_auc_std"] = matched_std
    if stream:
        report["stream"] = {
            "alerts": len(stream),
            "classes": dict(Counter(r["label"] for r in stream)),
        }
    report["between_nights"] = between_nights(real, simulated)
    return report


def between_nights(real, simulated) -> dict:
    """The real-vs-simulated classifier turned on two real samples: the real alerts of the real
    sample's two largest nights, one against the other (all their alerts, and those of each class
    both nights hold), and each of those nights against the simulated alerts.

    Real alerts of one night share its seeing, sky and depth, so the statistics tell two real
    nights apart as they tell a night from the simulated alerts, drawn over the survey's range
    of conditions: the AUC between two real nights is the yardstick for the real-vs-simulated
    AUC of a sample drawn from a few nights. Two random halves of the first night give the
    null (about 0.5)."""
    nights = Counter(row["night"] for row in real if row["night"] >= 0).most_common(2)
    if len(nights) < 2 or nights[1][1] < MIN_PER_CLASS:
        return {}
    first, second = ([row for row in real if row["night"] == night] for night, _ in nights)
    result = {"nights": [night for night, _ in nights], "alerts": [len(first), len(second)]}
    shared = {}  # the classes both nights hold enough of, as (first's, second's) alerts
    for class_name in ALERCE_CLASSES:
        pair = tuple(
            [row for row in night if row["label"] == class_name] for night in (first, second)
        )
        if min(map(len, pair)) >= MIN_PER_CLASS:
            shared[class_name] = pair
    # The null: two random halves of the first night, which nothing but chance separates.
    order = np.random.default_rng(0).permutation(len(first))
    halves = (
        [first[i] for i in order[: len(first) // 2]],
        [first[i] for i in order[len(first) // 2 :]],
    )
    for group, names in FEATURE_GROUPS.items():
        entry = dict(zip(("auc", "auc_std"), classifier_auc(first, second, names), strict=True))
        entry["per_class"] = {}
        for class_name, (one, other) in shared.items():
            auc, auc_std = classifier_auc(one, other, names)
            entry["per_class"][class_name] = {
                "alerts": [len(one), len(other)], "auc": auc, "auc_std": auc_std
            }  # fmt: skip
        entry["against_simulated"] = [
            classifier_auc(sample, simulated, names)[0] for sample in (first, second)
        ]
        entry["first_night_halves_auc"] = classifier_auc(*halves, names)[0]
        result[group] = entry
    return result


def print_report(report: dict) -> None:
    print("\nreal-vs-simulated classifier (gradient boosting, 5-fold CV ROC AUC; 0.5 = ideal):")
    for group, title in (
        ("normalised", "normalised 21x21 stamp statistics"),
        ("normalised+raw", "+ raw sky level and noise"),
        ("alerce23_fields", "the 23 candidate fields of alerce23"),
    ):
        entry = report[group]
        print(
            f"  {title:40s} AUC {entry['auc']:.3f} +- {entry['auc_std']:.3f}; labelled real vs "
            f"simulated at their class mix {entry['labelled_class_matched_auc']:.3f} +- "
            f"{entry['labelled_class_matched_auc_std']:.3f}"
        )
    if "stream" in report:
        print(
            f"  the real stream ({report['stream']['alerts']} alerts, unlabelled ones classed by "
            "--stream-classes-from) vs simulated at its class mix: "
            + ", ".join(
                f"{group} {report[group]['stream_class_matched_auc']:.3f}"
                for group in FEATURE_GROUPS
            )
        )
    print("\nper class (labelled real alerts of the class vs simulated alerts of the class):")
    for class_name in ALERCE_CLASSES:
        cells = []
        for group in FEATURE_GROUPS:
            entry = report[group]["per_class"][class_name]
            auc = f"{entry['auc']:.3f}" if "auc" in entry else "  n/a"
            cells.append(f"{group} {auc}")
        entry = report["normalised"]["per_class"][class_name]
        top = ", ".join(f"{name} {auc:.2f}" for name, auc in entry.get("most_separating", []))
        fields = report["alerce23_fields"]["per_class"][class_name].get("most_separating", [])
        top_fields = ", ".join(f"{name[6:]} {auc:.2f}" for name, auc in fields)
        print(
            f"  {class_name:9s} real {entry['real']:4d} sim {entry['simulated']:4d}  "
            f"{'  '.join(cells)}\n{'':11s}most separating: stamps {top}; fields {top_fields}"
        )
    nights = report.get("between_nights")
    if nights:
        first, second = nights["nights"]
        print(
            f"\nthe same classifier between two real nights (JD {first}: {nights['alerts'][0]} "
            f"alerts, JD {second}: {nights['alerts'][1]}); the yardstick for a sample of few "
            "nights:"
        )
        for group in FEATURE_GROUPS:
            entry = nights[group]
            classes_text = ", ".join(
                f"{name} {found['auc']:.3f}" for name, found in entry["per_class"].items()
            )
            against = " and ".join(f"{auc:.3f}" for auc in entry["against_simulated"])
            print(
                f"  {group:16s} night vs night {entry['auc']:.3f} +- {entry['auc_std']:.3f}"
                f"{'; within ' + classes_text if classes_text else ''}; each night vs "
                f"simulated {against}; random halves of the first night "
                f"{entry['first_night_halves_auc']:.3f}"
            )
    print("\nmost separating single statistics (univariate AUC, 0.5 = same distribution):")
    for name, auc in report["normalised+raw"]["most_separating"]:
        print(f"  {name:28s} {auc:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=0.5)
    default_real = shared_dir() / "data" / "ztf" / "alerts"
    parser.add_argument("--real", default=str(default_real))
    parser.add_argument(
        "--labelled",
        default=str(default_real.parent),
        help="folder with labels.csv whose labelled alerts give the per-class real samples",
    )
    parser.add_argument(
        "--stream-classes-from",
        default=None,
        help="CSV of class probabilities of the --real alerts (candid, p_<class>; e.g. "
        "../shared/reference/alerce_stamp_classifier_2019_images/expected_probabilities.csv): "
        "also compare the real stream with the simulated alerts at the stream's class mix, the "
        "unlabelled alerts taking their most probable class",
    )
    parser.add_argument("--out", default=None, help="also write the AUCs as JSON here")
    args = parser.parse_args()
    labels = LabelTable.from_csv(Path(args.labelled) / "labels.csv")
    real = collect(args.real, labels=labels, labelled_only=False)
    real_labelled = collect(args.labelled, labels=labels)
    with tempfile.TemporaryDirectory() as scratch:
        simulate(scratch, num_objects=args.objects, seed=args.seed, difficulty=args.difficulty)
        simulated = collect(
            Path(scratch) / "alerts", labels=LabelTable.from_csv(Path(scratch) / "labels.csv")
        )
    print(f"real alerts: {len(real)} ({args.real}); simulated alerts: {len(simulated)}\n")
    print_table(real, simulated)
    stream = stream_classes(real, args.stream_classes_from) if args.stream_classes_from else None
    report = realism_report(real, real_labelled, simulated, stream)
    print_report(report)
    if args.out:
        from stampnet.jsonable import json_ready
        from stampnet.simulation.simulate import SIMULATOR_VERSION

        report = {"simulator_version": SIMULATOR_VERSION, "objects": args.objects, **report}
        Path(args.out).write_text(json.dumps(json_ready(report), indent=1))


if __name__ == "__main__":
    main()
