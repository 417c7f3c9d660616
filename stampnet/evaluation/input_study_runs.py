"""One input-study run folder read back as a row, and its scores on the labelled real alerts.

``input_study.run_study`` trains each condition into its own run folder
(``OUT/runs/<channels>-<features>-seed<seed>``). ``row_from_run`` rebuilds the study's row from
the folder alone (``config.json``, ``evaluation.json``, ``history.csv`` and ``STUDY_NAME``: the
run's CPU seconds and, when it was also scored on the real sample, those scores), so a study cut
short resumes where it stopped and is summarised with every score it had (``--from-runs``).
"""

from __future__ import annotations

import json
from pathlib import Path

#: Written beside ``evaluation.json`` when the study has finished with a run: its CPU seconds
#: (training, testing and real-sample scoring) and its ``real_*`` scores (``score_on_real``).
STUDY_NAME = "input_study.json"


def matrix_scores(confusion) -> dict[str, float]:
    """Accuracy and macro recall (over classes present) of a confusion matrix."""
    import numpy as np

    matrix = np.asarray(confusion, dtype=np.float64)
    support = matrix.sum(axis=1)
    present = support > 0
    recall = np.diag(matrix)[present] / support[present]
    return {
        "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1.0)),
        "macro_recall": float(recall.mean()) if present.any() else float("nan"),
    }


def is_finished(run_dir: Path, with_real: bool) -> bool:
    """Whether the study finished with ``run_dir`` (and scored it on the real sample if asked)."""
    path = Path(run_dir) / STUDY_NAME
    if not path.is_file():
        return False
    return not with_real or "real_accuracy" in json.loads(path.read_text())


def write_study_scores(run_dir: str | Path, scores: dict) -> None:
    """Marks the run finished for the study: ``scores`` (CPU seconds, real scores) to
    ``STUDY_NAME``."""
    from stampnet.jsonable import json_ready

    (Path(run_dir) / STUDY_NAME).write_text(json.dumps(json_ready(scores), indent=1))


def row_from_run(run_dir: str | Path) -> dict:
    """The study's row of a trained run folder: condition, test scores, learning curve and,
    when present, the CPU seconds and real-sample scores of ``STUDY_NAME``.

    Raises:
        ValueError: ``evaluation.json`` has no test confusion matrix (an empty test split).
    """
    from stampnet.training.runs import CONFIG_NAME, EVALUATION_NAME, read_history

    run_dir = Path(run_dir)
    config = json.loads((run_dir / CONFIG_NAME).read_text())
    test = json.loads((run_dir / EVALUATION_NAME).read_text()).get("test", {})
    if "confusion_matrix" not in test:
        raise ValueError(
            f"{run_dir / EVALUATION_NAME} has no test confusion matrix: empty test split?"
        )
    row = {
        "channels": ",".join(config["model_config"]["channels"]),
        "features": config["data"]["feature_set"],
        "seed": int(config["train"]["seed"]),
        **{f"test_{key}": value for key, value in matrix_scores(test["confusion_matrix"]).items()},
        "test_examples": int(test["num_examples"]),
        "run_dir": str(run_dir),
    }
    history = read_history(run_dir)
    if history is not None and "val_loss" in history:
        row["val_loss"] = [float(value) for value in history["val_loss"]]
        row["epochs"] = len(row["val_loss"])
        row["best_epoch"] = int(history["val_loss"].to_numpy().argmin()) + 1
    if (run_dir / STUDY_NAME).is_file():
        row.update(json.loads((run_dir / STUDY_NAME).read_text()))
    return row


def score_on_real(model, real_sample) -> dict:
    """``model``'s ``real_*`` scores on the labelled real alerts: accuracy, macro recall,
    macro-F1, confusion matrix and their 95 % bootstrap intervals."""
    from stampnet.evaluation.input_study_real import real_scores
    from stampnet.evaluation.transfer import evaluate_on_sample

    return {**real_scores(evaluate_on_sample(model, real_sample)), "real_alerts": len(real_sample)}
