"""Export alert packets to the layouts of other stamp databases: ``stampnet export``.

The same alerts in the layouts stampnet reads as a user's own data (``stampnet.data.own``), each
written with the ``mapping.json`` that reads it back (``stampnet build --mapping
OUT/mapping.json``). The layouts (``LAYOUTS``: Deep-HiTS npz or pickle chunks, ALeRCE-style
parquet, BTSbot npy+CSV, HDF5) and how each is written: ``stampnet.data.export_layouts``. Files
are written ``chunk_rows`` alerts at a time, so memory stays flat. Alerts are exported as read:
duplicated candids stay duplicated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from stampnet.constants import UNLABELLED
from stampnet.data.alert import Alert, AlertError, RejectionLog
from stampnet.data.derived import DerivationError, snr_difference
from stampnet.data.export_layouts import LAYOUTS, reading_mapping, write_chunk
from stampnet.data.labels import LabelTable
from stampnet.data.readers import ALERT_COLUMNS, alert_from_packet, iter_packets
from stampnet.data.stamps import fit_to_shape

DEFAULT_CHUNK_ROWS = 1000
MAPPING_NAME = "mapping.json"


def iter_labelled(
    sources, labels: LabelTable | None, rejections: RejectionLog
) -> Iterator[tuple[Alert, Mapping, str]]:
    """(alert, packet, label) of every decodable packet of ``sources``."""
    for source, packet in iter_packets(sources, rejections, columns=ALERT_COLUMNS):
        try:
            alert = alert_from_packet(packet, source)
        except AlertError as error:
            rejections.add_error(error)
            continue
        label = labels.label_for(alert.object_id, alert.candid) if labels else UNLABELLED
        yield alert, packet, label


def export_alerts(
    sources,
    out_dir: str | Path,
    layout: str,
    *,
    labels: str | Path | LabelTable | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    rejections: RejectionLog | None = None,
    crop: int | None = None,
    real_bogus: bool = False,
) -> dict:
    """Writes the alerts of ``sources`` to ``out_dir`` in ``layout`` (see the module docstring).

    Args:
        crop: centre-crop stamps to ``crop`` x ``crop`` pixels (Deep-HiTS: 21); not for
            ``alerce-table``, which keeps the packets' FITS bytes.
        real_bogus: the binary task: "bogus" stays bogus, every other label becomes "real"
            (1 in Deep-HiTS layouts), and unlabelled alerts are left out.

    Returns:
        ``{"layout", "rows", "files", "mapping", "rejections"}``; ``mapping`` is the path of the
        ``mapping.json`` that reads the files back.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, received {layout!r}")
    if int(chunk_rows) < 1:
        raise ValueError(f"chunk_rows must be >= 1, received {chunk_rows}")
    if crop is not None and (layout == "alerce-table" or not 1 <= int(crop) <= 63):
        raise ValueError(f"crop must be in [1, 63] and not for alerce-table, received {crop}")
    size = 63 if crop is None else int(crop)
    label_table = LabelTable.from_csv(labels) if isinstance(labels, str | Path) else labels
    rejections = RejectionLog() if rejections is None else rejections
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, rows, count = [], [], 0
    for alert, packet, label in iter_labelled(sources, label_table, rejections):
        if real_bogus:
            if label == UNLABELLED:
                continue
            label = "bogus" if label == "bogus" else "real"
        if crop is not None:
            stamps, mask = fit_to_shape(alert.stamps, alert.stamp_mask, size, size)
            alert = dataclasses.replace(alert, stamps=stamps, stamp_mask=mask)
        if layout.startswith("deep-hits") and not _has_noise(alert, rejections):
            continue
        row = (alert, packet, label)
        rows.append(row)
        if len(rows) == chunk_rows:
            files += write_chunk(layout, rows, out_dir, len(files))
            count, rows = count + len(rows), []
    if rows:
        files += write_chunk(layout, rows, out_dir, len(files))
        count += len(rows)
    mapping_path = out_dir / MAPPING_NAME
    mapping_path.write_text(json.dumps(reading_mapping(layout, size, real_bogus), indent=2) + "\n")
    return {
        "layout": layout,
        "rows": count,
        "files": [str(path) for path in files],
        "mapping": str(mapping_path),
        "rejections": rejections.counts(),
    }


def _has_noise(alert: Alert, rejections: RejectionLog) -> bool:
    try:
        snr_difference(alert.stamps[..., 2], alert.stamp_mask[..., 2])
    except DerivationError as error:
        rejections.add(alert.source, alert.candid, f"no SNR-difference channel: {error}")
        return False
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", required=True, help="alert files or dirs")
    parser.add_argument("--layout", required=True, choices=LAYOUTS)
    parser.add_argument("--out", required=True, help="directory to write")
    parser.add_argument("--labels", help="labels CSV (objectId[,candid],label)")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    parser.add_argument("--crop", type=int, help="centre-crop stamps to this size (e.g. 21)")
    parser.add_argument(
        "--real-bogus", action="store_true", help="binary labels: bogus vs real (all others)"
    )


def run(args: argparse.Namespace) -> int:
    summary = export_alerts(
        args.source,
        args.out,
        args.layout,
        labels=args.labels,
        chunk_rows=args.chunk_rows,
        crop=args.crop,
        real_bogus=args.real_bogus,
    )
    print(
        f"Exported {summary['rows']} alerts as {summary['layout']} to {args.out} "
        f"({len(summary['files'])} files); read back with --mapping {summary['mapping']}"
    )
    return 0
