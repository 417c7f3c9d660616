"""Predictions of the real SNe and AGN split by detection history, from ``transfer.py`` JSONs.

ALeRCE's feature preprocessing clips ``ndethist`` at 20 (``stampnet.features.ALERCE_CLIPPING``),
so a model with the ``alerce23`` features sees a history of 20 or more detections as one value.
Simulators up to 1.6.6 never gave a supernova 20 detections, while 61 of the 86 labelled real SN
alerts have them. This prints, per run of each JSON, what the real SNe and AGN on either side of
the clip were called (the JSON's ``predicted``, in the real sample's order)::

    python benchmarks/history_split.py benchmarks/results/simulator_realism/transfer-16*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stampnet.shared_data import shared_dir

SHARED = shared_dir()
CLIP = 20


def history_split(result: dict, labels, ndethist, class_names, classes=("SN", "AGN")) -> list:
    """Rows (class, side, alerts, counts of predicted classes) of one ``evaluate_on_sample``
    result."""
    names = np.asarray(class_names)
    predicted, truth = names[np.asarray(result["predicted"])], names[labels]
    rows = []
    for name in classes:
        for side, chosen in ((f"< {CLIP}", ndethist < CLIP), (f">= {CLIP}", ndethist >= CLIP)):
            selected = (truth == name) & chosen
            counts = {other: int((predicted[selected] == other).sum()) for other in class_names}
            rows.append((name, side, int(selected.sum()), counts))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="transfer.py JSON files")
    parser.add_argument("--real", default=str(SHARED / "data" / "ztf"), help="real sample folder")
    args = parser.parse_args(argv)

    from stampnet.evaluation.real_sample import load_real_sample
    from stampnet.features import METADATA_FIELDS

    sample = load_real_sample(args.real)
    ndethist = sample.metadata[:, METADATA_FIELDS.index("ndethist")]
    for path in args.results:
        report = json.loads(Path(path).read_text())
        for run, result in report["results"].items():
            if len(result["predicted"]) != len(sample):
                raise SystemExit(
                    f"{path} {run}: {len(result['predicted'])} predictions, the real "
                    f"sample has {len(sample)} alerts (another sample?)"
                )
            version = report.get("simulator_version", "?")
            for name, side, count, counts in history_split(
                result, sample.labels, ndethist, sample.class_names
            ):
                called = ", ".join(f"{key} {value}" for key, value in counts.items())
                print(f"{version} {run}: {name} ndethist {side} ({count}): {called}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
