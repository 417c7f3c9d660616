"""Label tables: alert-level labels win over object-level ones; unlabelled is "unknown"."""

from __future__ import annotations

import collections

import pytest

from stampnet.constants import UNLABELLED
from stampnet.data.labels import LabelTable


def write(tmp_path, text: str):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_real_labels_file(ztf_dir):
    table = LabelTable.from_csv(ztf_dir / "labels.csv")
    assert len(table.candids()) == 2021 and len(table.object_ids()) == 1806
    counts = collections.Counter(label for _, label in table.candid_labels.values())
    assert counts == {
        "SN": 86, "AGN": 28, "VS": 135, "asteroid": 300, "bogus": 125, "other": 33, "unknown": 1314
    }  # fmt: skip
    assert table.label_for("ZTF17aaaaaas", 1127174604415015005) == UNLABELLED
    assert table.class_names() == ["AGN", "SN", "VS", "asteroid", "bogus", "other"]


def test_object_level_labels_without_candid_column(tmp_path):
    table = LabelTable.from_csv(write(tmp_path, "objectId,label,note\nZTF1,SN,x\nZTF2,AGN,y\n"))
    assert table.label_for("ZTF1") == "SN" and table.label_for("ZTF1", 123) == "SN"
    assert table.label_for("ZTF3", 5) == UNLABELLED
    assert table.object_ids() == {"ZTF1", "ZTF2"}


def test_alert_label_wins_over_object_label(tmp_path):
    text = "objectId,candid,label\nZTF1,,VS\nZTF1,11,bogus\nZTF2,21,SN\n"
    table = LabelTable.from_csv(write(tmp_path, text))
    assert table.label_for("ZTF1", 11) == "bogus"
    assert table.label_for("ZTF1", 12) == "VS"
    assert table.label_for("ZTF2", 22) == UNLABELLED and table.label_for("ZTF2", 21) == "SN"
    assert table.object_ids() == {"ZTF1", "ZTF2"}


@pytest.mark.parametrize(
    "text, match",
    [
        ("objectId,candid\nZTF1,1\n", r"lacks column\(s\) \['label'\]"),
        ("candid,label\n1,SN\n", "objectId"),
        ("objectId,candid,label\nZTF1,abc,SN\n", "candid 'abc' is not an integer"),
        ("objectId,label\nZTF1,SN\nZTF1,AGN\n", "ZTF1 labelled 'AGN' but already 'SN'"),
        ("objectId,label\n,SN\n", "empty objectId"),
    ],
)
def test_bad_label_files_give_clear_errors(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        LabelTable.from_csv(write(tmp_path, text))
