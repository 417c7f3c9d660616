"""Mappings and the own-data readers on real ZTF stamps: presets and mapping files, HDF5 with
one (N, H, W, C) dataset, feather tables of flat arrays, split columns, rows without ids."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stampnet.data.alert import RejectionLog
from stampnet.data.mapping import DataMapping, guess_mapping, load_mapping, preset
from stampnet.data.own import AlertReader
from stampnet.data.readers import iter_alerts

SOURCE = "multi_record_avro/avro_multi_alerts.avro"


@pytest.fixture(scope="module")
def real(ztf_dir):
    alerts = list(iter_alerts(str(ztf_dir / SOURCE)))
    stamps = np.stack([np.where(a.stamp_mask, a.stamps, np.nan) for a in alerts])
    return alerts, stamps.astype(np.float32)


def test_mapping_file_starts_from_a_preset_and_overrides_it(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"preset": "deep_hits", "object_id": "ids", "split": "fold"}))
    mapping = load_mapping(path)
    assert mapping.channels == preset("deep-hits").channels and mapping.object_id == "ids"
    assert mapping.preset == "deep-hits" and mapping.label_names == {"0": "bogus", "1": "real"}
    yaml_path = tmp_path / "m.yaml"
    yaml_path.write_text("channels:\n  science: sci\n  difference: diff\nlabel: y\n")
    mapping = load_mapping(yaml_path)
    assert mapping.channels == ("science", "difference") and mapping.channel_keys == ("sci", "diff")
    path.write_text(json.dumps({"preset": "btsbot", "colour": "x"}))
    with pytest.raises(ValueError, match=r"m.json: unknown mapping field\(s\) \['colour'\]"):
        load_mapping(path)
    with pytest.raises(ValueError, match="unknown preset"):
        DataMapping.from_dict({"preset": "sdss"})
    with pytest.raises(ValueError, match="one key per channel"):
        DataMapping(channels=("a", "b"), channel_keys=("x",))


def test_guess_mapping_by_keys():
    keys = ["temp_images", "sci_images", "diff_images", "SNR_images", "labels", "SNRs"]
    assert guess_mapping(keys).preset == "deep-hits"
    assert guess_mapping(["oid", "cutoutScience", "cutoutTemplate", "cutoutDifference"]).preset == (
        "alerce-table"
    )
    assert guess_mapping(["stamps", "label"]) is None


def test_hdf5_with_one_stack_dataset_split_column_and_no_ids(real, tmp_path):
    import h5py

    alerts, stamps = real
    splits = np.array(
        ["train", "val", "test", "Training", "oops", "", "test", "valid"][: len(stamps)]
    )
    with h5py.File(tmp_path / "d.h5", "w") as handle:
        handle.create_dataset("images/stack", data=stamps)
        handle.create_dataset("y", data=np.arange(len(stamps)) % 2)
        handle.create_dataset("fold", data=splits.tolist(), dtype=h5py.string_dtype())
    mapping = DataMapping(
        channels=("science", "template", "difference"),
        stamps="images/stack",
        label="y",
        split="fold",
        label_names={"1": "real", "0": "bogus"},
    )
    log = RejectionLog(warn=False)
    read = list(AlertReader(mapping=mapping)(tmp_path / "d.h5", rejections=log))
    assert [r.source.rsplit("#", 1)[1] for r in log] == ["4"] and "oops" in log.rejections[0].reason
    assert [a.split for a in read] == [
        "train",
        "validation",
        "test",
        "train",
        None,
        "test",
        "validation",
    ]
    assert [a.label for a in read] == ["bogus", "real", "bogus", "real", "real", "bogus", "real"]
    assert len({a.candid for a in read}) == len(read)
    assert all(a.object_id == a.source and a.source.startswith(str(tmp_path)) for a in read)
    kept = [alerts[i] for i in (0, 1, 2, 3, 5, 6, 7)]
    for alert, reference in zip(read, kept, strict=True):
        np.testing.assert_array_equal(alert.stamps, reference.stamps)
        np.testing.assert_array_equal(alert.stamp_mask, reference.stamp_mask)
        assert np.isnan(alert.metadata).all() and alert.jd == 0.0


def test_feather_table_of_flat_arrays_is_cropped_to_the_declared_size(real, tmp_path):
    import pyarrow
    import pyarrow.feather as feather

    alerts, stamps = real
    table = {
        name: [stamps[i, ..., c].reshape(-1).tolist() for i in range(len(stamps))]
        for c, name in enumerate(("sci", "ref", "diff"))
    }
    table["objectId"] = [a.object_id for a in alerts]
    feather.write_feather(pyarrow.table(table), tmp_path / "t.feather")
    mapping = DataMapping(
        channels=("science", "template", "difference"),
        channel_keys=("sci", "ref", "diff"),
        object_id="objectId",
        stamp_size=(21, 21),
    )
    read = list(AlertReader(mapping=mapping, derive_snr=True)(tmp_path / "t.feather"))
    assert [a.object_id for a in read] == [a.object_id for a in alerts]
    for alert, reference in zip(read, alerts, strict=True):
        assert alert.stamps.shape == (21, 21, 4) and alert.channels[-1] == "snr_difference"
        np.testing.assert_array_equal(alert.stamps[..., :3], reference.stamps[21:42, 21:42])


def test_array_without_mapping_is_rejected_with_what_to_do(real, tmp_path):
    _, stamps = real
    np.save(tmp_path / "x.npy", stamps)
    log = RejectionLog(warn=False)
    assert list(AlertReader()(tmp_path, rejections=log)) == []
    (rejection,) = log
    assert rejection.source == str(tmp_path / "x.npy") and "--preset" in rejection.reason


def test_export_cli_writes_files_and_the_mapping_that_reads_them(ztf_dir, tmp_path, capsys):
    from stampnet.cli import main

    out = tmp_path / "bts"
    argv = ["export", "--source", str(ztf_dir / SOURCE), "--layout", "btsbot", "--out", str(out)]
    assert main([*argv, "--crop", "31"]) == 0
    assert "read back with --mapping" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "mapping.json",
        "part-00000_cand.csv",
        "part-00000_triplets.npy",
    ]
    read = list(AlertReader(mapping=load_mapping(out / "mapping.json"))(out))
    assert len(read) == 8 and read[0].stamps.shape == (31, 31, 3)
    assert read[0].label == "unknown" and np.isfinite(read[0].metadata).sum() > 20
