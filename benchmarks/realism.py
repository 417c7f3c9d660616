"""How real do simulated alerts look? Side-by-side statistics and a real-vs-simulated classifier.

Usage: python benchmarks/realism.py [--objects 300] [--seed 0] [--real ../shared/data/ztf/alerts]

Both samples go through the same reader (``stampnet.data.readers.iter_alerts``). Prints quantiles
(5, 25, 50, 75, 95%) of stamp statistics and candidate fields, then the cross-validated ROC AUC of
a gradient-boosting classifier told to separate real from simulated alerts from stamp statistics
(0.5 = indistinguishable, 1.0 = trivially separable): once from the ALeRCE-normalised 21x21 crops
(what the models see), once adding raw levels (sky, noise) as well.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from stampnet.constants import CHANNELS
from stampnet.data.readers import RejectionLog, iter_alerts
from stampnet.features import METADATA_FIELDS
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
    return stats


def collect(source, limit=None) -> list[dict]:
    log = RejectionLog()
    rows = []
    for alert in iter_alerts(source, rejections=log):
        rows.append(alert_statistics(alert))
        if limit and len(rows) >= limit:
            break
    return rows


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


def classifier_auc(real, simulated, names) -> tuple[float, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    features = np.array([[r[n] for n in names] for r in real + simulated], dtype=np.float64)
    target = np.r_[np.ones(len(real)), np.zeros(len(simulated))]
    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=0)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = cross_val_score(model, features, target, cv=folds, scoring="roc_auc")
    return float(scores.mean()), float(scores.std())


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=0.5)
    default_real = Path(__file__).resolve().parents[2] / "shared" / "data" / "ztf" / "alerts"
    parser.add_argument("--real", default=str(default_real))
    args = parser.parse_args()
    real = collect(args.real)
    with tempfile.TemporaryDirectory() as scratch:
        simulate(scratch, num_objects=args.objects, seed=args.seed, difficulty=args.difficulty)
        simulated = collect(Path(scratch) / "alerts")
    print(f"real alerts: {len(real)} ({args.real}); simulated alerts: {len(simulated)}\n")
    print_table(real, simulated)
    normalised = [f"{c}_norm_{s}" for c in CHANNELS for s in ("mean", "std", "centre")]
    normalised += [f"{c}_norm_q{q}" for c in CHANNELS for q in QUANTILES]
    raw = [f"{c}_{s}" for c in CHANNELS for s in ("level", "sigma")]
    print("\nreal-vs-simulated classifier (gradient boosting, 5-fold CV ROC AUC; 0.5 = ideal):")
    for title, names in (
        ("normalised 21x21 stamp statistics", normalised),
        ("+ raw sky level and noise", normalised + raw),
    ):
        mean, std = classifier_auc(real, simulated, names)
        print(f"  {title:40s} AUC {mean:.3f} +- {std:.3f}")
    print("\nmost separating single statistics (univariate AUC, 0.5 = same distribution):")
    for name, auc in univariate_aucs(real, simulated, normalised + raw)[:8]:
        print(f"  {name:28s} {auc:.3f}")


if __name__ == "__main__":
    main()
