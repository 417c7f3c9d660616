"""How well a sequence VAE with the light-curve branch rebuilds the light curves it reads.

``LightCurveBaseline`` streams, for one model, the masked squared error of its predicted scaled
flux (``models.lightcurve.light_curve_target``) against the mean baseline, per band and kind of
row too, and keeps a few light curves per class for the report's figure. ``runner.collect``
feeds it for ``evaluate.py``; ``light_curve_reconstruction`` is the report of it;
``sequence_reconstruction_report`` gives the same numbers (and the mean-stamp ones) from a bare
model and dataset, for the benchmarks and tests.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from stampnet.constants import BANDS
from stampnet.data.history import HISTORY_FIELDS, KIND_NAMES
from stampnet.evaluation import plots
from stampnet.evaluation.reconstruction import MeanStampBaseline
from stampnet.models.lightcurve import light_curve_target

_DAYS, _FID, _KIND = (HISTORY_FIELDS.index(name) for name in ("days", "fid", "kind"))


class LightCurveBaseline:
    """Masked MSE of a predicted scaled flux against the mean baseline, in one streaming pass.

    The baseline predicts, for every row with a flux, the mean target over all such rows (the
    error a model that ignores its input cannot beat); per band and kind (``"r forced"``) the
    baseline is that group's own mean, a stricter bar, as the decoder knows each row's band and
    kind. Both need only sums of the weight, ``w t`` and ``w t**2`` per group.

    Args:
        class_names: names of the labels passed to ``add``, for the examples' captions.
        examples_per_class: light curves kept per class (the first with a flux).
    """

    def __init__(self, class_names=(), examples_per_class: int = 1):
        self.class_names = tuple(class_names)
        self.examples_per_class = examples_per_class
        self.sums = defaultdict(lambda: np.zeros(4))  # group -> rows, Σt, Σt², Σ(t - p)²
        self.examples: dict[str, list[dict]] = {}

    def add(self, light_curve, light_curve_mask, prediction, labels=None) -> None:
        """One batch: rows (B, L, K), mask (B, L), predicted scaled flux (B, L), labels (B,)."""
        light_curve = np.asarray(light_curve, np.float32)
        target, weight = (np.asarray(x, np.float64) for x in light_curve_target(
            light_curve, np.asarray(light_curve_mask, np.float32)))  # fmt: skip
        prediction = np.asarray(prediction, np.float64)
        used = weight > 0
        # band and kind of each row with a flux, as one code: 10 fid + kind
        codes = (10 * np.nan_to_num(light_curve[..., _FID]) + light_curve[..., _KIND])[used]
        values, errors = target[used], np.square(target - prediction)[used]
        for code in np.unique(codes.astype(np.int64)):
            chosen = codes == code
            t = values[chosen]
            self.sums[_group_name(code)] += (t.size, t.sum(), np.square(t).sum(),
                                             errors[chosen].sum())  # fmt: skip
        if labels is not None:
            self._keep_examples(light_curve, target, weight, prediction, np.asarray(labels))

    def _keep_examples(self, light_curve, target, weight, prediction, labels) -> None:
        for row, label in enumerate(labels):
            name = self.class_names[label] if label < len(self.class_names) else str(label)
            kept = self.examples.setdefault(name, [])
            used = weight[row] > 0
            if len(kept) < self.examples_per_class and used.any():
                kept.append({
                    "days": light_curve[row, used, _DAYS], "fid": light_curve[row, used, _FID],
                    "kind": light_curve[row, used, _KIND], "target": target[row, used],
                    "prediction": prediction[row, used],
                })  # fmt: skip

    def result(self) -> dict:
        """``mse``, ``baseline_mse``, ``mse_ratio``, ``rows`` and ``per_group`` (band kind ->
        the same against the group's mean); ValueError when no row had a flux."""
        if not self.sums:
            raise ValueError("No light-curve row with a flux: nothing to score the light curves")
        total = sum(self.sums.values())
        scores = _scores(total)
        scores["per_group"] = {group: _scores(self.sums[group]) for group in sorted(self.sums)}
        return scores


def _group_name(code: int) -> str:
    fid, kind = divmod(int(code), 10)
    return f"{BANDS.get(fid, f'fid {fid}')} {KIND_NAMES[kind]}"


def _scores(sums) -> dict:
    """A group's scores; its ratio is None when all its rows are equal (one row, say)."""
    rows, total, squares, error = (float(x) for x in sums)
    baseline = max(squares - total**2 / rows, 0.0) / rows
    ratio = error / rows / baseline if baseline > 1e-12 else None
    return {"mse": error / rows, "baseline_mse": baseline, "mse_ratio": ratio, "rows": int(rows)}


def light_curve_reconstruction(context, name: str) -> dict:
    """The report: light-curve MSE against the mean baseline, per band and kind, and a figure
    of a few light curves with their reconstruction (models without the branch: nothing)."""
    light_curves = context.collected.light_curves.get(name)
    if light_curves is None:
        return {}
    if not light_curves.sums:
        context.report.paragraph("No light-curve row of this split has a flux: the light-curve "
                                 "reconstruction is not scored.", "note")  # fmt: skip
        return {}
    scores = light_curves.result()
    context.report.heading("Light-curve reconstruction", 3)
    rows = [["all rows", scores["mse"], scores["baseline_mse"], scores["mse_ratio"],
             scores["rows"]]]  # fmt: skip
    rows += [[group, row["mse"], row["baseline_mse"], row["mse_ratio"], row["rows"]]
             for group, row in scores["per_group"].items()]  # fmt: skip
    context.report.table(
        ["rows", "model MSE", "mean baseline MSE", "ratio", "rows with a flux"],
        rows,
        caption="Scaled flux asinh(flux / 10 µJy) / 3 of every history row with a flux. Baseline: "
        "the mean over all rows; per band and kind, that group's own mean.",
    )
    if light_curves.examples:
        context.figure(
            f"light_curves_{name}",
            plots.plot_light_curves(light_curves.examples),
            "light curves and their reconstruction",
            "Points: the scaled flux of each row; crosses: the reconstruction from z_mean.",
        )
    return {"light_curve_reconstruction": scores}


def sequence_reconstruction_report(vae, dataset, max_batches: int | None = None) -> dict:
    """A sequence VAE's stamps against the mean stamp and, with the light-curve branch, its
    light curves against the mean baseline: ``mse``, ``bce``, ``baseline_mse``,
    ``baseline_bce``, ``mse_ratio``, ``valid_pixels`` and ``light_curve_mse``,
    ``light_curve_baseline_mse``, ``light_curve_mse_ratio``, ``light_curve_rows``.

    The same accumulators as ``evaluate.py`` (``MeanStampBaseline``, ``LightCurveBaseline``), for
    a model and a dataset of inputs or ``(inputs, ...)`` tuples, labelled or not.
    """
    stamps, light_curves, batches = MeanStampBaseline(), LightCurveBaseline(), 0
    for batch in dataset.take(max_batches) if max_batches else dataset:
        inputs = batch[0] if isinstance(batch, tuple) else batch
        target, mask = (np.asarray(x) for x in vae.target_and_mask(inputs))
        outputs = vae(inputs, training=False)
        stamps.add(target, np.asarray(outputs["reconstruction"]), mask)
        if vae.light_curve_decoder is not None:
            light_curves.add(inputs["light_curve"], inputs["light_curve_mask"],
                             outputs["light_curve_reconstruction"])  # fmt: skip
        batches += 1
    if not batches:
        raise ValueError("sequence_reconstruction_report received an empty dataset")
    pixels = stamps.result()
    report = {
        "mse": pixels["pixel_mse"], "bce": pixels["pixel_bce"],
        "baseline_mse": pixels["mean_stamp_mse"], "baseline_bce": pixels["mean_stamp_bce"],
        "mse_ratio": pixels["mse_ratio_to_mean_stamp"], "valid_pixels": pixels["valid_pixels"],
    }  # fmt: skip
    if vae.light_curve_decoder is not None:
        scores = light_curves.result()
        report.update({f"light_curve_{key}": scores[key] for key in ("mse", "mse_ratio", "rows")})
        report["light_curve_baseline_mse"] = scores["baseline_mse"]
    return report
