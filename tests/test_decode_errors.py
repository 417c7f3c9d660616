"""Corrupt input is a rejection; a bug (NameError, MemoryError, ...) in a decoder is not hidden
as one (``stampnet.data.errors.CORRUPT_INPUT_ERRORS``)."""

from __future__ import annotations

import gzip
import io

import fastavro
import pytest

from stampnet.data import avro, fits, readers
from stampnet.data.alert import RejectionLog
from stampnet.data.readers import iter_alerts

SMALL_AVRO = "multi_record_avro/avro_multi_alerts_other.avro"  # 3 records, ztf.alert schema


def rewritten(ztf_dir, tmp_path, change, name="changed.avro"):
    """The 3-record real file written again after ``change(records[1])``."""
    with open(ztf_dir / SMALL_AVRO, "rb") as handle:
        reader = fastavro.reader(handle)
        schema, records = reader.writer_schema, list(reader)
    change(records[1])
    out = io.BytesIO()
    fastavro.writer(out, schema, records)
    path = tmp_path / name
    path.write_bytes(out.getvalue())
    return path


def corrupt_gzip(record):
    data = bytearray(record["cutoutScience"]["stampData"])
    data[len(data) // 2 : len(data) // 2 + 40] = b"\xff" * 40
    record["cutoutScience"]["stampData"] = bytes(data)


def truncated_fits(record):
    raw = gzip.decompress(record["cutoutTemplate"]["stampData"])
    record["cutoutTemplate"]["stampData"] = gzip.compress(raw[: 2880 + 100])


def garbage_fits(record):
    record["cutoutDifference"]["stampData"] = gzip.compress(b"SIMPLE  = nonsense" * 300)


@pytest.mark.parametrize(
    "change", [corrupt_gzip, truncated_fits, garbage_fits], ids=lambda f: f.__name__
)
def test_a_corrupt_cutout_in_a_valid_packet_is_a_rejection(ztf_dir, tmp_path, change):
    path = rewritten(ztf_dir, tmp_path, change)
    log = RejectionLog(warn=False)
    alerts = list(iter_alerts(path, rejections=log))
    assert len(alerts) == 2 and len(log) == 1
    assert log.rejections[0].source == f"{path}#1" and "cutout" in log.rejections[0].reason


@pytest.mark.parametrize("cut", [0.2, 0.5, 0.9])
def test_truncated_and_bit_flipped_files_are_rejections(ztf_dir, tmp_path, cut):
    data = bytearray((ztf_dir / SMALL_AVRO).read_bytes())
    truncated = tmp_path / "truncated.avro"
    truncated.write_bytes(bytes(data[: int(len(data) * cut)]))
    flipped = tmp_path / "flipped.avro"
    for position in range(int(len(data) * cut), len(data), 997):
        data[position] ^= 0x5A
    flipped.write_bytes(bytes(data))
    for path in (truncated, flipped):
        log = RejectionLog(warn=False)
        alerts = list(iter_alerts(path, rejections=log))
        assert len(log) >= 1 and len(alerts) < 3


def raising(error):
    def decoder(*args, **kwargs):
        raise error

    return decoder


def test_a_programming_error_in_the_cutout_decoder_surfaces(ztf_dir, monkeypatch):
    monkeypatch.setattr(readers, "decode_cutout", raising(NameError("name 'stamp' is not defined")))
    with pytest.raises(NameError, match="stamp"):
        list(iter_alerts(ztf_dir / SMALL_AVRO, rejections=RejectionLog(warn=False)))


def test_memory_error_while_decoding_a_block_surfaces(ztf_dir, monkeypatch):
    monkeypatch.setattr(avro, "decompress_block", raising(MemoryError()))
    with pytest.raises(MemoryError):
        list(iter_alerts(ztf_dir / SMALL_AVRO, rejections=RejectionLog(warn=False)))


def test_a_bug_inside_the_astropy_fallback_surfaces(ztf_dir, monkeypatch):
    import astropy.io.fits

    monkeypatch.setattr(fits, "_fast_decode", lambda raw: None)  # force the astropy path
    monkeypatch.setattr(astropy.io.fits, "open", raising(AttributeError("no attribute 'hdu'")))
    with pytest.raises(AttributeError, match="hdu"):
        list(iter_alerts(ztf_dir / SMALL_AVRO, rejections=RejectionLog(warn=False)))


def test_a_bug_while_reading_a_tarball_surfaces(ztf_dir, monkeypatch):
    monkeypatch.setattr(readers, "_iter_avro", raising(RecursionError("too deep")))
    with pytest.raises(RecursionError):
        list(iter_alerts(ztf_dir / "alerts/ztf_public_20180201.tar.gz"))
