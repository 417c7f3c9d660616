"""Candidate fields of real and simulated alerts of one class, for the simulator's property tests
(``test_simulation_realism``, ``test_simulation_survey``, ``test_simulation_catalogues``)."""

from __future__ import annotations

import csv

import numpy as np

from stampnet.data.labels import LabelTable
from stampnet.data.readers import RejectionLog, iter_alerts
from stampnet.features import METADATA_FIELDS
from stampnet.simulation.simulate import simulate


def labelled_alerts(source, labels, label: str):
    """The alerts of ``source`` that ``labels`` calls ``label``."""
    for alert in iter_alerts(source, rejections=RejectionLog()):
        if labels.label_for(alert.object_id, alert.candid) == label:
            yield alert


def class_fields(source, labels, label: str, names: tuple[str, ...]) -> np.ndarray:
    """Candidate fields ``names`` of the alerts of ``source`` that ``labels`` calls ``label``."""
    columns = [METADATA_FIELDS.index(n) for n in names]
    rows = [alert.metadata[columns] for alert in labelled_alerts(source, labels, label)]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))


def labelled_real(ztf_dir, label: str) -> tuple:
    """(the files holding the real alerts labelled ``label``, the sample's ``LabelTable``)."""
    with open(ztf_dir / "labels.csv", newline="") as handle:
        files = sorted({row["file"] for row in csv.DictReader(handle) if row["label"] == label})
    return [ztf_dir / name for name in files], LabelTable.from_csv(ztf_dir / "labels.csv")


def real_and_simulated(ztf_dir, tmp_path, label, names, **simulation) -> tuple:
    """``class_fields`` of every labelled real alert of ``label`` and of a simulation of it."""
    real = class_fields(*labelled_real(ztf_dir, label), label, names)
    simulate(tmp_path, classes_=(label,), workers=1, **simulation)
    simulated = class_fields(
        tmp_path / "alerts", LabelTable.from_csv(tmp_path / "labels.csv"), label, names
    )
    return real, simulated
