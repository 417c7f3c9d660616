"""Small real-data inputs for the dataset tests: a handful of ZTF sample files and their labels."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

from stampnet.data.alert import RejectionWarning

#: ~110 alerts of ~55 objects: every Avro flavour, parquet, the 4 duplicated schema-version
#: copies, a 21-alert object (ZTF20abfcszi) and labels AGN, SN, VS, asteroid, other, unknown.
SMALL_SOURCES = (
    "schema_versions",
    "multi_record_avro/avro_multi_alerts.avro",
    "multi_record_avro/part-00002-55a6e4a3-f920-47e5-a698-47f9b6bc5a74-c000.avro",
    "fink_parquet/fink-filters__datatest__tde__tde_ZTF20abfcszi_202008.parquet",
    "fink_parquet/fink-filters__fink_filters__data__few_SLSN_alerts.parquet",
)
#: An object named in the labels but absent from the alerts.
UNSEEN_OBJECT = "ZTF99zzzzzzz"


def small_sources(ztf_dir: Path) -> list[str]:
    return [str(ztf_dir / name) for name in SMALL_SOURCES]


def write_small_labels(ztf_dir: Path, path: Path) -> Path:
    """The sample's labels of the SMALL_SOURCES alerts, plus one row for an unseen object."""
    with open(ztf_dir / "labels.csv", newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if any(name.split("/")[-1] in row["file"] for name in SMALL_SOURCES)
        ]
    rows.append({"objectId": UNSEEN_OBJECT, "candid": "1", "label": "SN"})
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["objectId", "candid", "label"])
        writer.writeheader()
        writer.writerows({key: row[key] for key in ("objectId", "candid", "label")} for row in rows)
    return path


def build_quietly(*args, **kwargs) -> dict:
    """``build_dataset`` with the expected per-rejection warnings recorded, not raised."""
    from stampnet.data.build import build_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectionWarning)
        return build_dataset(*args, **kwargs)


#: Five nights of real alerts holding VS, asteroid and bogus labels (about 70 alerts).
TINY_NIGHTS = ("20191115", "20231012", "20200101", "20180904", "20181230")


def build_tiny_nights(ztf_dir: Path, root: Path) -> Path:
    """Builds ``TINY_NIGHTS`` with only their labels into ``root / "data"``."""
    from stampnet.data.build import build_dataset

    files = [f"alerts/ztf_public_{night}.tar.gz" for night in TINY_NIGHTS]
    # Only the labels of these files: a label of an alert not built is (rightly) a warning.
    import pandas as pd

    labels = pd.read_csv(ztf_dir / "labels.csv")
    labels[labels["file"].isin(files)].to_csv(root / "labels.csv", index=False)
    build_dataset([ztf_dir / f for f in files], root / "data", labels=root / "labels.csv")
    return root / "data"
