"""One cell of a transfer confusion matrix, looked at: the real alerts of class T called P.

Usage:
    python benchmarks/confusion_cell.py RESULT.json --true bogus --predicted asteroid
        [--run builtin-alerce23-seed0] [--rows 8] [--out cell.png]

Reads the predictions of a ``transfer.py`` JSON (``predicted``, in the real sample's order) and
sets the cell's alerts beside two groups that bound it: the alerts of T called T, and the alerts
of P called P. Prints, per group, the median and 10-90 % range of candidate fields (the
``alerce23`` features and the fields the labels were derived from), the nights the cell's alerts
come from, and each alert's label evidence; writes a stamp gallery (the cell's alerts first, then
as many of P called P). It answers whether a cell is the simulator's fault, a feature the model
cannot read, or a label the stamps contradict.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stampnet.shared_data import shared_dir  # noqa: E402

SHARED = shared_dir()

FIELDS = (
    "magpsf", "snr", "fwhm", "classtar", "isdiffpos", "diffmaglim", "distpsnr1", "sgscore1",
    "distnr", "magnr", "ndethist", "ncovhist", "ecl_lat", "elong", "rb", "drb",
)  # fmt: skip


def field_column(metadata: np.ndarray, name: str) -> np.ndarray:
    """A candidate field per alert; ``snr`` is 1.0857 / sigmapsf. Missing values are NaN."""
    from stampnet.features import METADATA_FIELDS

    if name == "snr":
        column = 1.0857 / metadata[:, METADATA_FIELDS.index("sigmapsf")]
    else:
        column = metadata[:, METADATA_FIELDS.index(name)].astype(np.float64)
    return np.where(column > -900.0, column, np.nan)  # ZTF's -999: no match


def cell_groups(labels, predicted, class_names, true: str, called: str) -> dict:
    """Masks of the cell (``true`` called ``called``) and of the two classes called right."""
    names = list(class_names)
    for name in (true, called):
        if name not in names:
            raise ValueError(f"class {name!r} is not one of the sample's {names}")
    if true == called:
        raise ValueError(f"{true} called {called} is no mistake: give two different classes")
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if labels.shape != predicted.shape:
        raise ValueError(f"{predicted.size} predictions for {labels.size} alerts (another sample?)")
    t, p = names.index(true), names.index(called)
    return {
        f"{true} called {called}": (labels == t) & (predicted == p),
        f"{true} called {true}": (labels == t) & (predicted == t),
        f"{called} called {called}": (labels == p) & (predicted == p),
    }


def field_table(metadata, groups: dict, fields=FIELDS) -> list[tuple]:
    """Rows (field, [(median, p10, p90, known) per group]); NaN where a group knows none."""
    rows = []
    for name in fields:
        column = field_column(metadata, name)
        cells = []
        for mask in groups.values():
            known = column[mask][np.isfinite(column[mask])]
            stats = np.percentile(known, [50, 10, 90]) if known.size else [np.nan] * 3
            cells.append((*(float(v) for v in stats), int(known.size)))
        rows.append((name, cells))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", help="a transfer.py JSON")
    parser.add_argument("--true", required=True, help="the alerts' label")
    parser.add_argument("--predicted", required=True, help="what the model called them")
    parser.add_argument("--run", default=None, help="run of the JSON (default: its first)")
    parser.add_argument("--rows", type=int, default=8, help="alerts of each kind in the gallery")
    parser.add_argument("--real", default=str(SHARED / "data" / "ztf"), help="real sample folder")
    parser.add_argument("--out", default=None, help="stamp gallery PNG (default: none)")
    args = parser.parse_args(argv)

    from stampnet.evaluation.real_sample import load_real_sample
    from stampnet.features import METADATA_FIELDS

    report = json.loads(Path(args.result).read_text())
    run = args.run or next(iter(report["results"]))
    if run not in report["results"]:
        raise SystemExit(f"{args.result}: no run {run!r}; it has {sorted(report['results'])}")
    sample = load_real_sample(args.real)
    predicted = np.asarray(report["results"][run]["predicted"])
    groups = cell_groups(sample.labels, predicted, sample.class_names, args.true, args.predicted)
    cell_name, _, right_name = groups
    cell = groups[cell_name]
    print(f"{args.result} {run} (simulator {report.get('simulator_version', '?')})")
    print(" | ".join(f"{name}: {int(mask.sum())}" for name, mask in groups.items()))
    for name, cells in field_table(sample.metadata, groups):
        text = " | ".join(
            f"{med:8.2f} [{low:8.2f},{high:8.2f}] n={known}" for med, low, high, known in cells
        )
        print(f"  {name:10s} {text}")
    jd = sample.metadata[cell, METADATA_FIELDS.index("jd")]
    nights = Counter(np.floor(jd[np.isfinite(jd)]).astype(int).tolist())
    print("nights (JD) of the cell:", ", ".join(f"{n}: {k}" for n, k in nights.most_common()))
    evidence = Counter(str(e) for e in sample.evidence[cell])
    common = evidence.most_common(5)
    print("label evidence of the cell:", "; ".join(f"{e} ({k})" for e, k in common))
    if args.out:
        from stampnet.evaluation.plots import plot_stamp_gallery

        index, captions = [], []
        for name in (cell_name, right_name):
            for i in np.flatnonzero(groups[name])[: args.rows]:
                values = {n: field_column(sample.metadata[i : i + 1], n)[0] for n in FIELDS}
                index.append(i)
                captions.append(
                    f"{name}\n{sample.object_ids[i]}\nmag {values['magpsf']:.2f} S/N "
                    f"{values['snr']:.1f}\nfwhm {values['fwhm']:.2f} distnr {values['distnr']:.1f}"
                )
        figure = plot_stamp_gallery(
            sample.stamps[index],
            captions,
            masks=sample.stamp_mask[index],
            title=f"{run}: {cell_name}, then {right_name}",
        )
        figure.savefig(args.out, dpi=80)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
