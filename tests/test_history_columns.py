"""The compiled history decoder (``history_columns``, ``avro_history``) against fastavro.

Its contract: the columns hold exactly what the rows code makes of a full fastavro decode, or the
block is decoded in full. Checked on every Avro packet of the shared sample (every schema), on
packets edited to leave the walker's common case, and on packets with corrupted history bytes.
"""

from __future__ import annotations

import io
import sys
import tarfile

import fastavro
import numpy as np
import pytest

from stampnet.data import history as history_lib
from stampnet.data import history_columns
from stampnet.data.alert import RejectionLog
from stampnet.data.avro import AvroDecoder
from stampnet.data.history import HISTORY_COLUMNS, HISTORY_SUBFIELDS, history_records
from stampnet.data.history_columns import HistoryColumns
from stampnet.data.readers import ALERT_COLUMNS, iter_alerts, iter_packets
from stampnet.data.sources import file_format, resolve_sources

COLUMNS = ALERT_COLUMNS + HISTORY_COLUMNS
PACKET_402 = "schema_versions/v4.02_3044341005815015012.avro"


def avro_containers(ztf_dir):
    """(name, bytes) of every Avro container of the sample: files and tarball members."""
    for path in resolve_sources(ztf_dir):
        kind = file_format(path)
        if kind == "avro":
            yield str(path), path.read_bytes()
        elif kind == "tar":
            with tarfile.open(path, "r|gz") as archive:
                for member in archive:
                    if member.isfile():
                        yield f"{path}::{member.name}", archive.extractfile(member).read()


def assert_same_history(columnar: dict, full: dict, where: str) -> None:
    """``columnar``'s history fields equal what history.py makes of ``full``'s entry dicts."""
    for name in HISTORY_COLUMNS:
        if name not in full:
            assert name not in columnar, where
            continue
        if full[name] is None:
            assert columnar[name] is None, where
            continue
        columns = columnar[name]
        assert isinstance(columns, HistoryColumns), f"{where}: {name} fell back to fastavro"
        assert len(columns) == len(history_lib._entries(full[name])), where
        assert history_values(columns, name) == history_values(full[name], name), where
    np.testing.assert_array_equal(
        history_records(columnar, include_alert=True),
        history_records(full, include_alert=True),
        err_msg=where,
    )


def test_columns_equal_fastavro_full_decode_on_every_packet_of_the_sample(ztf_dir, monkeypatch):
    """Every schema of the sample (1.7 to 4.02, Spark's nullable entries, empty and null
    histories, schema-4 fp_hists) takes the compiled path, and gives fastavro's values."""
    monkeypatch.setattr(history_columns, "INITIAL_ROWS", 4)  # the retry with more rows, too
    decoder = AvroDecoder(COLUMNS, HISTORY_SUBFIELDS, history_columns=HISTORY_SUBFIELDS)
    reference = AvroDecoder()  # fastavro's full decode, with the parsed schemas cached
    seen = {"packets": 0, "fp_hists": 0, "null": 0, "empty": 0}
    for where, data in avro_containers(ztf_dir):
        full = list(reference.records_of_bytes(data))
        columnar = list(decoder.records_of_bytes(data))
        assert len(columnar) == len(full), where
        for index, (mine, whole) in enumerate(zip(columnar, full, strict=True)):
            assert list(mine) == [name for name in whole if name in COLUMNS]
            for name in ALERT_COLUMNS:
                assert mine.get(name) == whole.get(name), f"{where}#{index}: {name}"
            assert_same_history(mine, whole, f"{where}#{index}")
            seen["packets"] += 1
            seen["fp_hists"] += bool(whole.get("fp_hists"))
            seen["null"] += whole.get("prv_candidates") is None
            seen["empty"] += whole.get("prv_candidates") == []
    assert seen["packets"] >= 1700 and seen["fp_hists"] >= 5 and seen["null"] >= 1, seen


def _packet_402(ztf_dir):
    with open(ztf_dir / PACKET_402, "rb") as handle:
        reader = fastavro.reader(handle)
        return reader.writer_schema, next(iter(reader))


def _encoded(schema, record, codec="null") -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, [record], codec=codec)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "change, falls_back",
    [
        ({"isdiffpos": "F"}, True),  # another spelling: history._sign reads the full decode
        ({"isdiffpos": "false"}, True),
        ({"pdiffimfilename": "ztf_\u00e9.fits"}, True),  # not ASCII: fastavro checks UTF-8
        ({"isdiffpos": None}, False),
        ({"isdiffpos": "f", "magpsf": float("inf"), "fid": 3}, False),
    ],
    ids=["F", "false", "utf8", "null", "inf"],
)
def test_unusual_entries_give_the_full_decode_values(ztf_dir, change, falls_back):
    schema, record = _packet_402(ztf_dir)
    assert record["prv_candidates"][0]["isdiffpos"] == "t"  # a detection
    record["prv_candidates"][0].update(change)
    data = _encoded(schema, record)
    decoder = AvroDecoder(COLUMNS, HISTORY_SUBFIELDS, history_columns=HISTORY_SUBFIELDS)
    (columnar,) = decoder.records_of_bytes(data)
    (full,) = fastavro.reader(io.BytesIO(data))
    assert isinstance(columnar["prv_candidates"], list) == falls_back
    assert isinstance(columnar["fp_hists"], list) == falls_back  # the whole block
    np.testing.assert_array_equal(
        history_records(columnar, include_alert=True), history_records(full, include_alert=True)
    )


def test_corrupt_history_bytes_give_what_the_full_decoder_gives(ztf_dir):
    """A byte changed anywhere in the history: the same packet or the same rejection as the
    decoder without columns (the per-alert error names the alert)."""
    schema, record = _packet_402(ztf_dir)
    raw = bytearray(_encoded(schema, record))  # no codec: a changed byte keeps the block size
    start = raw.index(record["prv_candidates"][0]["pdiffimfilename"].encode()) - 300
    end = raw.index(record["cutoutScience"]["fileName"].encode())
    columnar = AvroDecoder(COLUMNS, HISTORY_SUBFIELDS, history_columns=HISTORY_SUBFIELDS)
    plain = AvroDecoder(COLUMNS, HISTORY_SUBFIELDS)
    rng = np.random.default_rng(12)
    for position in rng.choice(np.arange(start, end), 60, replace=False):
        changed = bytearray(raw)
        changed[position] ^= 0x5A
        mine, theirs = (
            [_comparable(item) for item in decoder.records_of_bytes(bytes(changed))]
            for decoder in (columnar, plain)
        )
        assert mine == theirs, position


def _comparable(item):
    if not isinstance(item, dict):
        return item  # a SkippedBlock: its reason names the error
    return {
        key: history_values(value, key) if key in HISTORY_COLUMNS and value is not None else value
        for key, value in item.items()
    }


def history_values(value, name: str) -> bytes:
    """What the rows code reads of a history field, as columns or as a list of entry dicts."""
    entries = history_lib._entries(value)
    names = tuple(field for field in HISTORY_SUBFIELDS[name] if field != "isdiffpos")
    table = history_lib._table(entries, names)
    signs = history_lib._signs(entries) if "isdiffpos" in HISTORY_SUBFIELDS[name] else []
    return np.column_stack([table, np.reshape(signs, (len(table), -1))]).tobytes()


def test_rejected_packet_with_a_corrupt_history_names_the_alert(ztf_dir, tmp_path):
    schema, record = _packet_402(ztf_dir)
    raw = bytearray(_encoded(schema, record))
    history_at = raw.index(record["prv_candidates"][0]["pdiffimfilename"].encode()) - 400
    raw[history_at : history_at + 8] = b"\xff" * 8  # varints that run on
    path = tmp_path / "corrupt_history.avro"
    path.write_bytes(bytes(raw))
    log = RejectionLog(warn=False)
    assert list(iter_alerts(path, rejections=log, history=True)) == []
    (rejection,) = log.rejections
    assert rejection.source.startswith(str(path))


def test_without_numba_the_history_is_decoded_by_fastavro(ztf_dir, monkeypatch):
    import stampnet.data

    monkeypatch.setitem(sys.modules, "stampnet.data.history_walker", None)  # import fails
    monkeypatch.delattr(stampnet.data, "history_walker", raising=False)
    options = dict(columns=COLUMNS, subfields=HISTORY_SUBFIELDS, history_columns=True)
    (packet,) = [packet for _, packet in iter_packets(ztf_dir / PACKET_402, **options)]
    assert isinstance(packet["prv_candidates"], list) and isinstance(packet["fp_hists"], list)
    monkeypatch.undo()
    (alert,) = iter_alerts(ztf_dir / PACKET_402, history=True)
    np.testing.assert_array_equal(alert.history, history_records(packet, include_alert=True))
