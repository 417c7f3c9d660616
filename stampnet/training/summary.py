"""What ``train`` prints last: how good the model is, where the run is, what to run next.

The numbers come from the evaluation's own code (``stampnet.evaluation``) run on the saved run
folder, so the summary says what ``python evaluate.py RUN`` will report, in a few lines:
classifiers their test accuracy, macro-F1 and (binary tasks) ROC AUC and the false-positive rate
at 95 % true-positive rate; autoencoders their reconstruction error against the mean stamp and
their active latent units, and, with the light-curve branch, the light curves' error against
the mean baseline.
"""

from __future__ import annotations

import types
from pathlib import Path

from stampnet.evaluation import clustering, metrics


def closing_summary(run_dir, data_dir, *, split: str = "test", batch_size: int = 64) -> str:
    """The closing lines of a training run (``split`` falls back to validation, then train)."""
    from stampnet.data.card import load_card
    from stampnet.evaluation import loading, runner

    run_dir, data_dir = Path(run_dir), Path(data_dir)
    loaded = loading.load_run(run_dir)
    card = load_card(data_dir)
    counts = card.get("counts", {}).get(loaded.dataset_kind, {})
    split = next((name for name in (split, "validation", "train") if counts.get(name)), split)
    options = types.SimpleNamespace(batch_size=batch_size, max_examples=None)
    class_names = loaded.class_names or tuple(card["class_names"])
    collected = runner.collect(
        loaded.models,
        loading.split_batches(loaded, data_dir, split, card, options),
        dataset_classes=tuple(card["class_names"]),
        model_classes=class_names,
        mistakes_per_model=0,
        sequences=loaded.dataset_kind == "sequences",
    )
    unit = "objects" if loaded.dataset_kind == "sequences" else "alerts"
    lines = [f"{split} split: {collected.labels.size} labelled {unit}"]
    for name, role in collected.roles.items():
        if role == "classifier":
            lines.append(_classifier_line(name, collected, class_names))
        else:
            lines.extend(_latent_lines(name, collected))
    lines.append(f"run folder: {run_dir}")
    lines.append(f"next: python evaluate.py {run_dir}   (metrics, figures and report.html)")
    return "\n".join(lines)


def _classifier_line(name, collected, class_names) -> str:
    scores = metrics.classification_metrics(
        collected.labels, collected.probabilities[name], class_names
    )
    line = f"{name}: accuracy {scores['accuracy']:.3f}, macro-F1 {scores['macro_f1']:.3f}"
    binary = scores.get("binary")
    if binary:
        line += (
            f", ROC AUC {binary['roc_auc']:.3f}, false-positive rate "
            f"{binary['fpr_at_tpr']['0.95']:.3f} at 95 % of '{binary['positive_class']}'"
        )
    return line + f" ({len(class_names)} classes)"


def _latent_lines(name, collected) -> list[str]:
    lines = []
    baseline = collected.reconstruction_baseline.get(name)
    if baseline:
        ratio = baseline["mse_ratio_to_mean_stamp"]
        verdict = "better than" if ratio < 1 else "NOT better than"
        lines.append(
            f"{name}: reconstruction MSE {baseline['pixel_mse']:.4g} per pixel against "
            f"{baseline['mean_stamp_mse']:.4g} for the mean stamp (ratio {ratio:.2f}: {verdict} "
            "the mean stamp)"
        )
    light_curves = collected.light_curves.get(name)
    if light_curves is not None and light_curves.sums:
        scores = light_curves.result()
        ratio = scores["mse_ratio"]
        verdict = (
            "n/a"
            if ratio is None
            else f"{ratio:.2f}: "
            + ("better than the mean" if ratio < 1 else "NOT better than the mean")
        )
        lines.append(
            f"{name}: light-curve MSE {scores['mse']:.4g} per row against "
            f"{scores['baseline_mse']:.4g} for the mean (ratio {verdict}; "
            f"{scores['rows']} rows with a flux)"
        )
    latents = collected.z_mean[name]
    if len(latents) >= 2:
        active = clustering.active_units(latents)
        lines.append(
            f"{name}: {active['active_units']} of {active['latent_dim']} latent units active "
            f"(variance of the posterior mean > {clustering.ACTIVE_UNIT_THRESHOLD})"
        )
    return lines
