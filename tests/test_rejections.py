"""``RejectionLog``: bounded memory however much input is bad, every rejection kept in a
compressed file, one summary warning."""

from __future__ import annotations

import gzip
import json
import warnings

import pytest

from stampnet.data.alert import REJECTIONS_FILE, Rejection, RejectionLog, RejectionWarning


def test_ten_thousand_rejections_keep_memory_bounded_and_the_file_holds_all(tmp_path):
    log = RejectionLog(keep=100)
    reasons = ("truncated", "bad gzip", "not a record")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for index in range(10_000):
            log.add(f"night.tar.gz::{index}.avro", index, reasons[index % 3])
        path = log.save(tmp_path / REJECTIONS_FILE)
        log.warn_summary("building test", saved=path)
    assert len(log) == 10_000 and len(log.rejections) == 100  # the in-memory list is bounded
    assert log.counts() == {"truncated": 3334, "bad gzip": 3333, "not a record": 3333}
    assert [r.candid for r in log.rejections] == list(range(100))
    with gzip.open(path, "rt") as handle:
        listed = [Rejection(**json.loads(line)) for line in handle]
    assert [r.candid for r in listed] == list(range(10_000))
    assert listed[6] == Rejection("night.tar.gz::6.avro", 6, "truncated")
    assert [r.candid for r in log] == list(range(10_000))  # streamed back in order
    assert [w.category for w in caught] == [RejectionWarning]
    assert "10000 input(s) skipped building test: 3334 x truncated" in str(caught[0].message)
    assert str(path) in str(caught[0].message)


def test_rejections_after_a_save_or_a_read_are_kept_too(tmp_path):
    log = RejectionLog(keep=1)
    log.add("a.avro", None, "first")
    assert [r.source for r in log] == ["a.avro"]
    log.save(tmp_path / "early.jsonl.gz")
    log.add("b.avro", 2, "second")
    with gzip.open(log.save(tmp_path / "late.jsonl.gz"), "rt") as handle:
        assert [json.loads(line)["source"] for line in handle] == ["a.avro", "b.avro"]
    assert len(log.rejections) == 1 and len(log) == 2


def test_an_empty_log_saves_an_empty_file_and_does_not_warn(tmp_path):
    log = RejectionLog()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log.warn_summary("nothing")
    with gzip.open(log.save(tmp_path / REJECTIONS_FILE), "rt") as handle:
        assert handle.read() == ""
    assert list(log) == []
    with pytest.raises(ValueError, match="keep"):
        RejectionLog(keep=-1)
