"""The record index's cache: reused while the files are unchanged, rebuilt otherwise, never read
half-written, beside the data or, where that cannot be written, in the user's cache."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from stampnet.data import record_index, record_index_cache

LABELS = [b"SN", b"AGN", b"", b"VS", b"SN", b"bogus", b"VS"]


def example(label: bytes, size: int) -> bytes:
    feature = {
        "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label])),
        "payload": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x" * size])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shard(path, records) -> None:
    with tf.io.TFRecordWriter(str(path)) as out:
        for record in records:
            out.write(record)


@pytest.fixture
def shards(tmp_path, monkeypatch):
    """Three TFRecord files of records of different sizes and labels (and an empty label)."""
    monkeypatch.setenv("STAMPNET_CACHE_DIR", str(tmp_path / "user"))
    folder = tmp_path / "data"
    folder.mkdir()
    names = []
    for number in range(3):
        records = [example(LABELS[(number + i) % 7], 100 * i + number) for i in range(5 + number)]
        names.append(str(folder / f"ztf_alerts-train.tfrecord-{number:05d}-of-00003"))
        write_shard(names[-1], records)
    return names


class CountingReader:
    def __init__(self):
        self.read = []

    def __call__(self, filename):
        self.read.append(filename)
        return record_index._read_file(filename)


def truth(filenames):
    found = []
    for name in filenames:
        records = list(tf.data.TFRecordDataset(name).as_numpy_iterator())
        labels = [tf.train.Example.FromString(r).features.feature["label"] for r in records]
        found.append(([len(r) for r in records], [label.bytes_list.value[0] for label in labels]))
    return found


def assert_index_of(entries, filenames):
    assert len(entries) == len(filenames)
    for (lengths, labels), want in zip(entries, truth(filenames), strict=True):
        want_lengths, want_labels = want
        assert lengths.dtype == np.int64 and lengths.tolist() == want_lengths
        assert list(labels) == want_labels


def cache_files(folder):
    return sorted(path.name for path in folder.iterdir() if "record-index" in path.name)


def test_cache_is_written_beside_the_data_and_reused(shards):
    reader = CountingReader()
    assert_index_of(record_index_cache.indexed_files(shards, reader), shards)
    assert reader.read == shards
    folder = record_index_cache.cache_paths(shards)[0].parent
    assert len(cache_files(folder)) == 1 and cache_files(folder)[0].startswith(".stampnet-")
    again = CountingReader()
    assert_index_of(record_index_cache.indexed_files(shards, again), shards)
    assert again.read == []
    # Another set of files (a slice's) has its own cache.
    record_index_cache.indexed_files(shards[:2], again)
    assert again.read == shards[:2] and len(cache_files(folder)) == 2


def test_a_changed_file_rebuilds_the_index(shards):
    record_index_cache.indexed_files(shards, CountingReader())
    write_shard(shards[1], [example(b"SN", 7), example(b"AGN", 3000)])
    reader = CountingReader()
    assert_index_of(record_index_cache.indexed_files(shards, reader), shards)
    assert reader.read == shards
    assert_index_of(record_index_cache.indexed_files(shards, CountingReader()), shards)


def test_other_records_behind_the_same_size_and_time_are_caught(shards):
    record_index_cache.indexed_files(shards, CountingReader())
    stat = os.stat(shards[2])
    records = list(tf.data.TFRecordDataset(shards[2]).as_numpy_iterator())
    write_shard(shards[2], records[::-1])  # same bytes in all, other record boundaries
    os.utime(shards[2], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(shards[2]).st_size == stat.st_size
    reader = CountingReader()
    assert_index_of(record_index_cache.indexed_files(shards, reader), shards)
    assert reader.read == shards


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "wrong lengths"])
def test_a_corrupt_cache_is_rebuilt_not_trusted(shards, damage):
    record_index_cache.indexed_files(shards, CountingReader())
    path = record_index_cache.cache_paths(shards)[0]
    content = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(content)))
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a well-formed cache whose lengths do not fit the files (sizes and times do)
        with np.load(path) as data:
            arrays = dict(data)
        arrays["lengths"] = arrays["lengths"][::-1].copy()
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    reader = CountingReader()
    assert_index_of(record_index_cache.indexed_files(shards, reader), shards)
    assert reader.read == shards
    again = CountingReader()  # the rebuilt index replaced the cache
    assert_index_of(record_index_cache.indexed_files(shards, again), shards)
    assert again.read == []


def test_a_read_only_data_folder_keeps_the_cache_in_the_users(shards, monkeypatch, tmp_path):
    folder = os.path.dirname(shards[0])
    os.chmod(folder, 0o555)
    if os.geteuid() == 0:  # root writes anyway: refuse as the kernel would refuse a user
        mkstemp = record_index_cache.tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if os.path.samefile(dir, folder):
                raise PermissionError(13, "Permission denied", dir)
            return mkstemp(*args, dir=dir, **kwargs)

        monkeypatch.setattr(record_index_cache.tempfile, "mkstemp", refuse)
    try:
        assert_index_of(record_index_cache.indexed_files(shards, CountingReader()), shards)
        reader = CountingReader()
        assert_index_of(record_index_cache.indexed_files(shards, reader), shards)
    finally:
        os.chmod(folder, 0o755)
    assert reader.read == []
    assert cache_files(tmp_path / "data") == []
    assert len(cache_files(tmp_path / "user" / "record-index")) == 1


def test_an_interrupted_write_leaves_no_cache_and_no_temporary(shards, monkeypatch, tmp_path):
    def fail(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(record_index_cache.np, "savez", fail)
    assert_index_of(record_index_cache.indexed_files(shards, CountingReader()), shards)
    assert cache_files(tmp_path / "data") == []
    user = tmp_path / "user" / "record-index"
    assert not user.exists() or cache_files(user) == []
