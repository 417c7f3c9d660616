"""Reading the real ZTF sample in every format, and surviving corrupt files."""

from __future__ import annotations

import collections
import functools
import io
import shutil
import tarfile
from pathlib import Path

import fastavro
import numpy as np
import pytest

from stampnet.constants import STAMP_SHAPE
from stampnet.data.alert import Alert, AlertError, RejectionLog, RejectionWarning
from stampnet.data.readers import alert_from_packet, iter_alerts, iter_packets, resolve_sources
from stampnet.features import METADATA_FIELDS

SMALL_TARBALL = "alerts/ztf_public_20180201.tar.gz"  # 5 alerts, 2 of them edge-truncated
SMALL_AVRO = "multi_record_avro/avro_multi_alerts_other.avro"  # 3 records, ztf.alert schema
SNAPPY_AVRO = "multi_record_avro/part-00001-0f70696a-f8dd-40ab-89e7-e7f64c104e25-c000.avro"
SMALL_PARQUET = (
    "fink_parquet/fink-broker__utest__datasets__science__year=2019__month=09__day=03__"
    "part-00000-67addd34-6967-4e0d-92ab-cd0a37aadaac.c000.snappy.parquet"
)


@functools.cache
def read_sample(ztf_dir: Path) -> tuple[list[Alert], RejectionLog]:
    log = RejectionLog()
    return list(iter_alerts(ztf_dir, rejections=log)), log


@pytest.fixture(scope="module")
def sample(ztf_dir):
    return read_sample(ztf_dir)


def folder_of(alert: Alert, ztf_dir: Path) -> str:
    return Path(alert.source.split("::")[0].split("#")[0]).relative_to(ztf_dir).parts[0]


def test_whole_sample_is_read_without_rejections(sample):
    alerts, log = sample
    assert len(log) == 0, log.rejections[:5]
    assert len(alerts) == 2024
    assert len({alert.candid for alert in alerts}) == 2021
    assert len({alert.object_id for alert in alerts}) == 1806


def test_counts_per_format_match_the_readme(sample, ztf_dir):
    alerts, _ = sample
    counts = collections.Counter(folder_of(alert, ztf_dir) for alert in alerts)
    assert counts == {
        "alerts": 1564,
        "multi_record_avro": 166,
        "fink_parquet": 286,
        "schema_versions": 8,
    }
    schema_copies = [a for a in alerts if folder_of(a, ztf_dir) == "schema_versions"]
    assert collections.Counter(a.candid for a in schema_copies)[472263571115115000] == 4


def test_sources_name_file_member_or_record(sample, ztf_dir):
    alerts, _ = sample
    by_folder = collections.defaultdict(list)
    for alert in alerts:
        by_folder[folder_of(alert, ztf_dir)].append(alert.source)
    assert all(s.endswith(".avro") and "::" in s for s in by_folder["alerts"])
    assert all("#" in source for source in by_folder["multi_record_avro"])
    assert all("#" in source for source in by_folder["fink_parquet"])
    assert all("#" not in s and "::" not in s for s in by_folder["schema_versions"])
    member = next(a for a in alerts if "::" in a.source)
    assert member.source.endswith(f"::{member.candid}.avro")


def test_alerts_are_well_formed(sample):
    alerts, _ = sample
    for alert in alerts:
        assert alert.stamps.shape == STAMP_SHAPE and alert.stamps.dtype == np.float32
        assert alert.stamp_mask.shape == STAMP_SHAPE and alert.stamp_mask.dtype == bool
        assert np.isfinite(alert.stamps).all(), alert.source
        assert (alert.stamps[~alert.stamp_mask] == 0.0).all()
        assert alert.metadata.shape == (len(METADATA_FIELDS),)
        assert alert.metadata.dtype == np.float64
        assert alert.fid in (1, 2, 3) and alert.jd > 2458150.0
        assert alert.object_id.startswith("ZTF") and isinstance(alert.candid, int)
    truncated = [alert for alert in alerts if alert.original_shape != (63, 63)]
    assert len(truncated) == 24
    assert all(not alert.stamp_mask.all() for alert in truncated)
    with_nan = [alert for alert in alerts if alert.original_shape == (63, 63)]
    assert sum(not alert.stamp_mask.all() for alert in with_nan) > 200  # 270 alerts hold NaN


def test_every_schema_version_is_read(sample):
    alerts, _ = sample
    versions = {alert.schema_version for alert in alerts}
    assert {"2.0", "3.0", "3.1", "3.2", "3.3", "3.5", "4.01", "4.02"} <= versions
    # Schemas 1.7/1.8 have no schemavsn field; drb arrived with 3.3 (some Spark re-serialised
    # packets that still say 3.0-3.2 carry it, so check the official single-version files).
    assert collections.Counter(alert.schema_version for alert in alerts)[""] == 35
    drb = METADATA_FIELDS.index("drb")
    official = {a.schema_version: a for a in alerts if "schema_versions" in a.source}
    assert len(official) == 8
    for version, alert in official.items():
        assert np.isnan(alert.metadata[drb]) == (version in ("2.0", "3.0", "3.1", "3.2")), version
    assert all(np.isnan(alert.metadata[drb]) for alert in alerts if not alert.schema_version)


def test_order_is_sorted_and_sources_can_be_mixed(ztf_dir):
    mixed = [
        ztf_dir / "schema_versions",
        str(ztf_dir / "alerts" / "*20180201*"),
        ztf_dir / SMALL_AVRO,
    ]
    paths = resolve_sources(mixed)
    assert paths[:8] == sorted(paths[:8]) and len(paths) == 10
    assert resolve_sources(mixed + [ztf_dir / SMALL_AVRO]) == paths  # no file read twice
    sources = [source for source, _ in iter_packets(mixed)]
    assert len(sources) == 8 + 5 + 3
    assert sources == [source for source, _ in iter_packets(mixed)]


def test_directory_scan_skips_readme_and_csv(ztf_dir):
    names = {path.name for path in resolve_sources(ztf_dir)}
    assert "README.md" not in names and "labels.csv" not in names
    assert len(names) == 105 + 6 + 16 + 8


def test_source_matching_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        list(iter_alerts(tmp_path / "no_such_dir" / "*.avro"))


def test_snappy_top_level_record_file_is_read(ztf_dir):
    with open(ztf_dir / SNAPPY_AVRO, "rb") as handle:
        reader = fastavro.reader(handle)
        assert reader.codec == "snappy" and reader.writer_schema["name"] == "topLevelRecord"
    assert len(list(iter_alerts(ztf_dir / SNAPPY_AVRO))) == 45


def real_packet(ztf_dir) -> dict:
    (_, packet), *_ = iter_packets(ztf_dir / "schema_versions" / "v3.3_schema_3.3.avro")
    return packet


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: p.pop("cutoutTemplate"), "cutoutTemplate is missing"),
        (lambda p: p.update(cutoutScience=None), "cutoutScience is missing"),
        (lambda p: p["cutoutDifference"].update(stampData=None), "stampData is missing"),
        (lambda p: p["cutoutDifference"].update(stampData=b"junk"), "not a FITS file"),
        (lambda p: p.pop("candidate"), "no candidate"),
        (lambda p: p.update(objectId=None), "objectId"),
        (lambda p: p["candidate"].update(jd=None), "candidate.jd"),
    ],
)
def test_bad_packets_raise_alert_error_naming_source_and_candid(ztf_dir, change, match):
    packet = real_packet(ztf_dir)
    change(packet)
    with pytest.raises(AlertError, match=match) as raised:
        alert_from_packet(packet, "some/file.avro")
    assert raised.value.source == "some/file.avro"
    assert raised.value.candid == 472263571115115000


def test_missing_optional_fields_become_nan_and_empty_version(ztf_dir):
    packet = real_packet(ztf_dir)
    for name in ("drb", "sgscore1", "schemavsn"):
        packet["candidate"].pop(name, None)
    packet.pop("schemavsn")
    alert = alert_from_packet(packet, "x.avro")
    assert alert.schema_version == ""
    assert np.isnan(alert.metadata[METADATA_FIELDS.index("drb")])
    assert np.isnan(alert.metadata[METADATA_FIELDS.index("sgscore1")])


def test_rejections_warn_and_reading_goes_on(ztf_dir, tmp_path):
    shutil.copy(ztf_dir / SMALL_AVRO, tmp_path / "good.avro")
    (tmp_path / "bad.avro").write_bytes(b"Obj\x01 this is not avro")
    log = RejectionLog()
    alerts = list(iter_alerts(tmp_path, rejections=log))  # the log's owner warns
    assert len(alerts) == 3
    assert [Path(r.source).name for r in log.rejections] == ["bad.avro"]
    assert len(log.counts()) == 1
    with pytest.warns(RejectionWarning, match="bad.avro") as caught:
        assert len(list(iter_alerts(tmp_path))) == 3  # no log given: one summary warning
    assert len(caught) == 1 and "1 input(s) skipped" in str(caught[0].message)


def test_tarball_member_that_is_not_avro_is_rejected(ztf_dir, tmp_path):
    tar_path = tmp_path / "night.tar.gz"
    with tarfile.open(ztf_dir / SMALL_TARBALL) as source, tarfile.open(tar_path, "w:gz") as out:
        for member in source:
            out.addfile(member, source.extractfile(member))
        junk = tarfile.TarInfo("123.avro")
        junk.size = 11
        out.addfile(junk, io.BytesIO(b"hello world"))
    log = RejectionLog(warn=False)
    alerts = list(iter_alerts(tar_path, rejections=log))
    assert len(alerts) == 5
    assert [(r.source, r.candid) for r in log.rejections] == [(f"{tar_path}::123.avro", 123)]


def test_unknown_file_format_is_rejected_not_skipped(tmp_path):
    (tmp_path / "alerts.avro").write_bytes(b"plain text")
    log = RejectionLog(warn=False)
    assert list(iter_alerts(tmp_path, rejections=log)) == []
    assert "unknown file format" in log.rejections[0].reason


def corrupted_copies(data: bytes, seed: int) -> list[bytes]:
    """Truncations at several points and copies with random bytes overwritten."""
    rng = np.random.default_rng(seed)
    copies = [data[: int(len(data) * fraction)] for fraction in (0.01, 0.3, 0.6, 0.95)]
    for _ in range(8):
        corrupt = bytearray(data)
        for position in rng.integers(0, len(data), size=6):
            corrupt[position] = int(rng.integers(0, 256))
        copies.append(bytes(corrupt))
    return copies


@pytest.mark.parametrize("name", [SMALL_TARBALL, SMALL_AVRO, SNAPPY_AVRO, SMALL_PARQUET])
def test_corrupted_files_give_rejections_not_exceptions(ztf_dir, tmp_path, name):
    original = (ztf_dir / name).read_bytes()
    expected = len(list(iter_alerts(ztf_dir / name)))
    suffix = "".join(Path(name).suffixes[-2:]) if name.endswith(".tar.gz") else Path(name).suffix
    for index, data in enumerate(corrupted_copies(original, seed=len(name))):
        path = tmp_path / f"copy{index}{suffix}"
        path.write_bytes(data)
        log = RejectionLog(warn=False)
        alerts = list(iter_alerts(path, rejections=log))
        assert len(alerts) <= expected
        assert all(np.isfinite(alert.stamps).all() for alert in alerts)
        if index < 4:  # truncated: something must be reported
            assert len(log) >= 1, f"truncated copy {index} of {name} read silently"
        for rejection in log.rejections:
            assert rejection.source.startswith(str(path)) and rejection.reason


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
def test_one_corrupt_block_costs_only_its_records(ztf_dir, tmp_path, codec):
    with open(ztf_dir / SMALL_AVRO, "rb") as handle:
        reader = fastavro.reader(handle)
        schema, records = reader.writer_schema, list(reader)
    path = tmp_path / "blocks.avro"
    with open(path, "wb") as out:
        # sync_interval=1: every record in its own data block.
        fastavro.writer(out, schema, records * 2, codec=codec, sync_interval=1)
    data = bytearray(path.read_bytes())
    sync = bytes(data[-16:])
    markers = [i for i in range(len(data) - 15) if data[i : i + 16] == sync]
    assert len(markers) == 1 + len(records) * 2  # header, then one marker after each block
    middle = (markers[1] + markers[2]) // 2  # inside the second record's block
    data[middle : middle + 30] = b"\x00" * 30
    path.write_bytes(bytes(data))
    log = RejectionLog(warn=False)
    alerts = list(iter_alerts(path, rejections=log))
    expected = [record["candid"] for record in records * 2]
    assert [alert.candid for alert in alerts] == expected[:1] + expected[2:]
    assert len(log) == 1 and log.rejections[0].source == f"{path}#1", log.rejections
    # Records keep their index in the file after the skipped one.
    assert [alert.source for alert in alerts] == [f"{path}#{i}" for i in (0, 2, 3, 4, 5)]


def test_broken_sync_marker_resumes_at_the_next_marker(ztf_dir, tmp_path):
    with open(ztf_dir / SMALL_AVRO, "rb") as handle:
        reader = fastavro.reader(handle)
        schema, records = reader.writer_schema, list(reader)
    path = tmp_path / "blocks.avro"
    with open(path, "wb") as out:
        fastavro.writer(out, schema, records * 2, codec="deflate", sync_interval=1)
    data = bytearray(path.read_bytes())
    sync = bytes(data[-16:])
    markers = [i for i in range(len(data) - 15) if data[i : i + 16] == sync]
    data[markers[2] : markers[2] + 16] = b"\x00" * 16  # the marker after the second block
    path.write_bytes(bytes(data))
    log = RejectionLog(warn=False)
    alerts = list(iter_alerts(path, rejections=log))
    expected = [record["candid"] for record in records * 2]
    # The second block fails its marker check; the third cannot be located without it.
    assert [alert.candid for alert in alerts] == expected[:1] + expected[3:]
    assert len(log) == 1 and "sync marker" in log.rejections[0].reason


def test_history_skipping_decoder_equals_full_decoding(ztf_dir):
    """The shortcut that skips prv_candidates/fp_hists gives the same fields on every member."""
    from stampnet.data.avro import AvroDecoder
    from stampnet.data.readers import ALERT_COLUMNS

    fast, full = AvroDecoder(ALERT_COLUMNS), AvroDecoder()
    shortcut_hits = 0
    original = fast._decode_split

    def counting(block, split):
        nonlocal shortcut_hits
        record = original(block, split)
        shortcut_hits += record is not None
        return record

    fast._decode_split = counting
    members = 0
    for path in sorted((ztf_dir / "alerts").glob("*.tar.gz")):
        with tarfile.open(path, "r|gz") as archive:
            for member in archive:
                data = archive.extractfile(member).read()
                (quick,) = fast.records_of_bytes(data)
                (whole,) = full.records_of_bytes(data)
                assert quick == {name: whole[name] for name in ALERT_COLUMNS if name in whole}
                members += 1
    assert members == 1564 and shortcut_hits == members


def test_decoder_without_the_history_jump_reads_the_history_and_gives_the_same_fields(ztf_dir):
    """skip_history=False (benchmarks/read.py's comparison) decodes through the history."""
    from stampnet.data.avro import AvroDecoder
    from stampnet.data.readers import ALERT_COLUMNS

    plain = AvroDecoder(ALERT_COLUMNS, skip_history=False)
    plain._decode_split = None  # must not be called
    fast = AvroDecoder(ALERT_COLUMNS)
    path = sorted((ztf_dir / "alerts").glob("*.tar.gz"))[-1]
    with tarfile.open(path, "r|gz") as archive:
        blobs = [archive.extractfile(member).read() for member in archive if member.isfile()]
    for data in blobs:
        assert list(plain.records_of_bytes(data)) == list(fast.records_of_bytes(data))
    assert blobs


@pytest.mark.parametrize(
    "file_name, history_name",
    [
        ("science.fits", "x.fits"),  # no ".fits.gz": the shortcut cannot find the cutouts
        ("candid1_sci.fits.gz", "decoy.fits.gz"),  # a decoy name inside the history
        ("a" * 300 + ".fits.gz", "b.fits.gz"),  # a name whose length takes two varint bytes
    ],
)
def test_unusual_cutout_names_still_decode_exactly(ztf_dir, tmp_path, file_name, history_name):
    from stampnet.data.avro import AvroDecoder
    from stampnet.data.readers import ALERT_COLUMNS

    with open(ztf_dir / "schema_versions" / "v4.02_3044341005815015012.avro", "rb") as handle:
        reader = fastavro.reader(handle)
        schema, (record,) = reader.writer_schema, list(reader)
    record["cutoutScience"]["fileName"] = file_name
    for previous in record["prv_candidates"]:
        previous["pdiffimfilename"] = history_name
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, [record])
    (decoded,) = AvroDecoder(ALERT_COLUMNS).records_of_bytes(buffer.getvalue())
    assert decoded == {name: record[name] for name in ALERT_COLUMNS if name in record}


def test_format_is_told_by_bytes_not_by_name(ztf_dir, tmp_path):
    shutil.copy(ztf_dir / SMALL_PARQUET, tmp_path / "looks_like.avro")
    shutil.copy(ztf_dir / SMALL_AVRO, tmp_path / "looks_like.parquet")
    shutil.copy(ztf_dir / SMALL_TARBALL, tmp_path / "night.bin")
    (tmp_path / "_SUCCESS").write_bytes(b"")
    (tmp_path / ".hidden.avro").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("not alert data")
    log = RejectionLog(warn=False)
    alerts = list(iter_alerts(tmp_path, rejections=log))
    assert len(log) == 0 and len(alerts) == 2 + 3 + 5
    kinds = {Path(alert.source.split("::")[0].split("#")[0]).name for alert in alerts}
    assert kinds == {"looks_like.avro", "looks_like.parquet", "night.bin"}
