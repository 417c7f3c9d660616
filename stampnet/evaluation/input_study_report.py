"""The input study's rows as a Markdown table with uncertainties, and their learning curves.

``markdown_table`` gives one line per condition: every score's mean +- std over the seeds that
finished (the value alone for one seed) and, for scores on the labelled real alerts, the 95 %
bootstrap interval of one run on that evaluation set (``input_study_real.bootstrap_intervals``;
the mean of the runs' bounds), which says how far another evaluation set of the same size would
move the number. ``plot_curves`` draws every run's validation loss per epoch: whether early
stopping stopped on a plateau.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

#: Columns of ``markdown_table`` (score keys of the rows), those present in at least one row.
TABLE_SCORES = ("test_accuracy", "test_macro_recall", "real_accuracy", "real_macro_f1")


def markdown_table(rows: Sequence[Mapping]) -> str:
    """One line per (channels, features), in the rows' order: seeds, each score's mean +- std
    [mean 95 % bootstrap interval], epochs trained (mean) and CPU seconds per run (mean)."""
    scores = [score for score in TABLE_SCORES if any(score in row for row in rows)]
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for row in rows:
        groups.setdefault((row["channels"], row["features"]), []).append(row)
    lines = [
        "| channels | features | seeds | " + " | ".join(scores) + " | epochs | CPU-s per run |",
        "|---|---|---|" + "---|" * len(scores) + "---|---|",
    ]
    for (channels, features), members in groups.items():
        cells = []
        for score in scores:
            values = [member[score] for member in members if score in member]
            if not values:
                cells.append("")
                continue
            cell = f"{np.mean(values):.3f}"
            if len(values) > 1:  # one seed has no spread to show
                cell += f" +- {np.std(values):.3f}"
            intervals = [m[f"{score}_ci95"] for m in members if f"{score}_ci95" in m]
            if intervals:
                low, high = np.mean(intervals, axis=0)
                cell += f" [{low:.2f}-{high:.2f}]"
            cells.append(cell)
        epochs = [member["epochs"] for member in members if "epochs" in member]
        cpu = [member["cpu_seconds"] for member in members if "cpu_seconds" in member]
        lines.append(
            f"| {channels} | {features} | {len(members)} | {' | '.join(cells)} | "
            f"{np.mean(epochs) if epochs else float('nan'):.0f} | "
            f"{np.mean(cpu) if cpu else float('nan'):.0f} |"
        )
    return "\n".join(lines)


def plot_curves(rows: Sequence[Mapping], path: str | Path) -> Path:
    """Validation loss per epoch of every run that recorded it, one panel per feature set,
    the best epoch of each run marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    feature_sets = list(dict.fromkeys(row["features"] for row in rows if "val_loss" in row))
    figure, panels = plt.subplots(
        1, max(len(feature_sets), 1), figsize=(5.5 * max(len(feature_sets), 1), 4), squeeze=False
    )
    for panel, features in zip(panels[0], feature_sets, strict=False):
        channel_sets = list(dict.fromkeys(row["channels"] for row in rows))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        labelled = set()
        for row in rows:
            if row["features"] != features or "val_loss" not in row:
                continue
            colour = colours[channel_sets.index(row["channels"]) % len(colours)]
            loss = row["val_loss"]
            label = None if row["channels"] in labelled else row["channels"]
            labelled.add(row["channels"])
            panel.plot(range(1, len(loss) + 1), loss, color=colour, lw=1, label=label)
            best = int(np.argmin(loss))
            panel.plot(best + 1, loss[best], "o", color=colour, ms=4)
        panel.set(xlabel="epoch", ylabel="validation loss", title=f"features {features}")
        panel.legend(fontsize=6)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
