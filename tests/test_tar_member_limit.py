"""A tar member larger than ``MAX_TAR_MEMBER_BYTES`` is rejected with its size, never read."""

from __future__ import annotations

import io
import tarfile
import tracemalloc

from stampnet.data import readers
from stampnet.data.alert import RejectionLog
from stampnet.data.readers import iter_alerts

SMALL_TARBALL = "alerts/ztf_public_20180201.tar.gz"  # 5 real alerts


def add_sparse_member(archive: tarfile.TarFile, name: str, size: int) -> None:
    """Adds a member of ``size`` zero bytes as a hole in the file: nothing is written for it."""
    info = tarfile.TarInfo(name)
    info.size = size
    header = info.tobuf(archive.format, archive.encoding, archive.errors)
    archive.fileobj.write(header)
    padded = -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    archive.fileobj.seek(padded, io.SEEK_CUR)
    archive.offset += len(header) + padded
    archive.members.append(info)


def test_a_member_over_the_default_limit_is_rejected_without_being_read(ztf_dir, tmp_path):
    size = readers.MAX_TAR_MEMBER_BYTES + 1
    tar_path = tmp_path / "night.tar"  # uncompressed, with the big member as a sparse hole
    with tarfile.open(ztf_dir / SMALL_TARBALL) as source, tarfile.open(tar_path, "w") as out:
        members = [member for member in source if member.isfile()]
        for index, member in enumerate(members):
            out.addfile(member, source.extractfile(member))
            if index == 1:  # in the middle: the members after it are still read
                add_sparse_member(out, "987654321.avro", size)
    list(iter_alerts(ztf_dir / SMALL_TARBALL))  # imports done before memory is traced
    log = RejectionLog(warn=False)
    tracemalloc.start()
    try:
        alerts = list(iter_alerts(tar_path, rejections=log))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(alerts) == len(members) == 5
    assert [(r.source, r.candid) for r in log.rejections] == [
        (f"{tar_path}::987654321.avro", 987654321)
    ]
    assert f"tar member of {size} bytes exceeds" in log.rejections[0].reason
    assert peak < 16 << 20, f"peak {peak} bytes: the big member was read into memory"


def test_the_limit_is_configurable(ztf_dir, monkeypatch):
    monkeypatch.setattr(readers, "MAX_TAR_MEMBER_BYTES", 1000)  # real packets are ~50-100 KB
    log = RejectionLog(warn=False)
    assert list(iter_alerts(ztf_dir / SMALL_TARBALL, rejections=log)) == []
    assert len(log) == 5
    assert all("exceeds the limit of 1000 bytes" in r.reason for r in log.rejections)
