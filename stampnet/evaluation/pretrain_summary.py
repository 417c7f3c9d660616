"""The VAE pre-training comparison summarised: mean +- std over seeds, a table and a plot.

``benchmarks/pretrain_real.py`` trains, per source of stamps (the real sample's unlabelled
alerts, the built-in simulated data) and per seed, one VAE (``pretrain_real.pretrain_vae``) and
the latent classifier on its frozen encoder (``pretrain_real.latent_scores``). Here its runs are
reduced to one entry per source: the classifier's accuracy and macro-F1 on the held-back real
alerts, with the 95 % bootstrap interval of one run's score on that evaluation set (the mean of
the runs' interval bounds, ``input_study_real.bootstrap_intervals``), and the VAE's
reconstruction against the mean stamp, its active units and its epochs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

#: Diagnostics of the VAE averaged over seeds (keys of ``vae_diagnostics`` plus ``epochs``).
VAE_KEYS = ("mse_ratio_to_mean_stamp", "active_units", "epochs")
SCORES = ("accuracy", "macro_f1")


def summarise_pretraining(
    results: Mapping[str, Sequence[Mapping]], diagnostics: Mapping[str, Sequence[Mapping]]
) -> dict[str, dict]:
    """Per source: mean and std (ddof 0) over seeds of the scores and the VAE diagnostics.

    Args:
        results: source -> one ``latent_scores`` result per seed (``accuracy``, ``macro_f1``,
            ``confusion_matrix``).
        diagnostics: source -> one ``vae_diagnostics`` result (plus ``epochs``) per seed.
    """
    from stampnet.evaluation.input_study_real import bootstrap_intervals

    summary = {}
    for source, runs in results.items():
        entry: dict = {"seeds": len(runs)}
        intervals = [bootstrap_intervals(run["confusion_matrix"]) for run in runs]
        for score in SCORES:
            values = [run[score] for run in runs]
            entry[f"{score}_mean"] = float(np.mean(values))
            entry[f"{score}_std"] = float(np.std(values))
            entry[f"{score}_ci95"] = np.mean([found[score] for found in intervals], axis=0).tolist()
        for key in VAE_KEYS:
            values = [float(found[key]) for found in diagnostics[source]]
            entry[f"{key}_mean"] = float(np.mean(values))
            entry[f"{key}_std"] = float(np.std(values))
        entry["converged"] = sum(
            found.get("converged_epoch") is not None for found in diagnostics[source]
        )
        summary[source] = entry
    return summary


def pretraining_table(summary: Mapping[str, Mapping], eval_alerts: int, seeds: int) -> str:
    """A Markdown table of ``summarise_pretraining``'s entries."""
    lines = [
        f"Latent classifier (images only, frozen encoder) on {eval_alerts} held-back real alerts; "
        f"mean +- std over {seeds} seeds (one VAE and one classifier per seed); [95 % bootstrap "
        "interval of one run on these alerts]",
        "",
        "| VAE trained on | accuracy | macro-F1 | reconstruction MSE / mean stamp's | "
        "active units (of 16) | VAE epochs | converged |",
        "|---|---|---|---|---|---|---|",
    ]
    for source, entry in summary.items():
        scores = [
            f"{entry[f'{score}_mean']:.3f} +- {entry[f'{score}_std']:.3f} "
            f"[{entry[f'{score}_ci95'][0]:.2f}-{entry[f'{score}_ci95'][1]:.2f}]"
            for score in SCORES
        ]
        lines.append(
            f"| {source} | {' | '.join(scores)} | "
            f"{entry['mse_ratio_to_mean_stamp_mean']:.3f} +- "
            f"{entry['mse_ratio_to_mean_stamp_std']:.3f} | "
            f"{entry['active_units_mean']:.1f} +- {entry['active_units_std']:.1f} | "
            f"{entry['epochs_mean']:.0f} +- {entry['epochs_std']:.0f} | "
            f"{entry['converged']} of {entry['seeds']} |"
        )
    return "\n".join(lines)


def plot_pretraining(
    summary: Mapping[str, Mapping],
    histories: Mapping[str, Sequence[Mapping[str, Sequence[float]]]],
    path: str | Path,
) -> Path:
    """Left: ELBO loss per epoch of every VAE; right: accuracy and macro-F1 per source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curves, bars) = plt.subplots(1, 2, figsize=(11, 4))
    colours = dict(zip(summary, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for source, runs in histories.items():
        for number, history in enumerate(runs):
            elbo = history["elbo_loss"]
            label = source if number == 0 else None
            curves.plot(range(1, len(elbo) + 1), elbo, color=colours[source], label=label)
    curves.set(xlabel="epoch", ylabel="ELBO loss (per stamp)", yscale="log", title="VAE training")
    curves.legend()
    width = 0.8 / max(len(summary), 1)
    for number, (source, entry) in enumerate(summary.items()):
        positions = np.arange(len(SCORES)) + number * width
        means = [entry[f"{score}_mean"] for score in SCORES]
        errors = [entry[f"{score}_std"] for score in SCORES]
        bars.bar(positions, means, width, yerr=errors, color=colours[source], label=source)
    bars.set_xticks(np.arange(len(SCORES)) + width * (len(summary) - 1) / 2, list(SCORES))
    bars.set(ylim=(0, 1), title="latent classifier on held-back real alerts")
    bars.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
