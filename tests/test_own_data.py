"""Own stamp databases: real ZTF alerts exported to the Deep-HiTS (npz and protocol-2 pickle),
ALeRCE-table, BTSbot and HDF5 layouts build back to the same stamps, masks, metadata, labels and
splits as the packet build, and classify to the same probabilities with the ALeRCE 2020 import."""

from __future__ import annotations

import csv
import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds

from stampnet.data.alert import RejectionLog, RejectionWarning
from stampnet.data.builder import load_builder
from stampnet.data.export import LAYOUTS, export_alerts
from stampnet.data.mapping import load_mapping
from stampnet.data.own import AlertReader, PickleWarning
from tests.dataset_helpers import build_quietly

#: ~45 alerts: 4 cut-off (edge-truncated) stamps, NaN pixels, multi-record Avro and Fink parquet.
SUBSET = (
    "alerts/ztf_public_20180201.tar.gz",
    "alerts/ztf_public_20180418.tar.gz",
    "alerts/ztf_public_20180904.tar.gz",
    "multi_record_avro/part-00002-55a6e4a3-f920-47e5-a698-47f9b6bc5a74-c000.avro",
    "fink_parquet/fink-broker__utest__datasets__science__year=2019__month=09__day=03__"
    "part-00000-67addd34-6967-4e0d-92ab-cd0a37aadaac.c000.snappy.parquet",
)
#: Deep-HiTS channel order -> the packet build's (science, template, difference, snr_difference).
DEEP_HITS_TO_PACKET = [1, 0, 2, 3]


def subset(ztf_dir):
    return [str(ztf_dir / name) for name in SUBSET]


def quietly(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectionWarning)
        warnings.simplefilter("ignore", PickleWarning)
        return function(*args, **kwargs)


def stored(data_dir) -> dict:
    """candid -> (split, example) of every alert of a built dataset."""
    builder = load_builder(data_dir, "alerts")
    return {
        int(example["candid"]): (split, example)
        for split in builder.info.splits
        for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    }


@pytest.fixture(scope="module")
def exported(ztf_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    labels = ztf_dir / "labels.csv"
    summaries = {
        layout: quietly(
            export_alerts, subset(ztf_dir), root / layout, layout, labels=labels, chunk_rows=20
        )
        for layout in LAYOUTS
    }
    return root, summaries


@pytest.fixture(scope="module")
def packet_builds(ztf_dir, exported):
    root, _ = exported
    labels = ztf_dir / "labels.csv"
    plain = build_quietly(subset(ztf_dir), root / "packets", labels=labels)
    snr = build_quietly(
        subset(ztf_dir), root / "packets_snr", labels=labels, reader=AlertReader(derive_snr=True)
    )
    assert plain["num_alerts"] >= 40 and snr["channels"][-1] == "snr_difference"
    return {"plain": stored(root / "packets"), "snr": stored(root / "packets_snr")}


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
def test_exported_layout_builds_back_to_the_packet_build(layout, exported, packet_builds):
    root, summaries = exported
    reader = AlertReader(
        mapping=load_mapping(summaries[layout]["mapping"]),
        allow_pickle=layout == "deep-hits-pickle",
    )
    card = quietly(build_quietly, root / layout, root / f"built-{layout}", reader=reader)
    deep_hits = layout.startswith("deep-hits")
    expected = packet_builds["snr" if deep_hits else "plain"]
    found = stored(root / f"built-{layout}")
    assert card["rejections"] == [] and sorted(found) == sorted(expected)
    assert card["reading"]["mapping"]["preset"] == (
        "deep-hits" if deep_hits else None if layout == "hdf5" else layout
    )
    order = DEEP_HITS_TO_PACKET if deep_hits else [0, 1, 2]
    for candid, (split, example) in found.items():
        expected_split, reference = expected[candid]
        assert split == expected_split and example["label"] == reference["label"]
        assert example["object_id"] == reference["object_id"] and example["fid"] == reference["fid"]
        np.testing.assert_allclose(example["stamps"][..., order], reference["stamps"], atol=1e-6)
        np.testing.assert_array_equal(example["stamp_mask"][..., order], reference["stamp_mask"])
        np.testing.assert_array_equal(example["metadata_present"], reference["metadata_present"])
        np.testing.assert_allclose(example["metadata"], reference["metadata"], rtol=1e-6)
        assert example["jd"] == reference["jd"]


@pytest.fixture(scope="module")
def alerce_2020_model(alerce_2020_dir, tmp_path_factory):
    from stampnet.models.alerce_import import import_alerce_checkpoint

    path = tmp_path_factory.mktemp("alerce") / "alerce_2020.keras"
    import_alerce_checkpoint(alerce_2020_dir / "tf1_checkpoint").save(path)
    return path


@pytest.mark.parametrize(
    "layout", ["alerce-table", "btsbot", "hdf5", "deep-hits-npz", "deep-hits-pickle"]
)
def test_exported_layout_classifies_like_the_packets(
    layout, exported, alerce_2020_model, ztf_dir, tmp_path
):
    from stampnet.inference import classify

    root, summaries = exported
    quietly(classify, alerce_2020_model, subset(ztf_dir), tmp_path / "packets.csv")
    # Deep-HiTS layouts hold four channels in their own order: the model's three are picked.
    reader = AlertReader(
        mapping=load_mapping(summaries[layout]["mapping"]),
        allow_pickle=layout == "deep-hits-pickle",
    )
    summary = quietly(
        classify, alerce_2020_model, root / layout, tmp_path / "own.csv", reader=reader
    )
    assert summary["rejected"] == 0
    packets = pd.read_csv(tmp_path / "packets.csv").dropna(subset=["p_SN"]).set_index("candid")
    own = pd.read_csv(tmp_path / "own.csv").set_index("candid")
    columns = [name for name in own.columns if name.startswith("p_")]
    assert len(columns) == 5 and sorted(own.index) == sorted(packets.index)
    np.testing.assert_allclose(own.loc[packets.index, columns], packets[columns], atol=1e-5)


def test_pickled_chunks_need_the_opt_in_and_warn(exported):
    root, summaries = exported
    mapping = load_mapping(summaries["deep-hits-pickle"]["mapping"])
    log = RejectionLog(warn=False)
    assert list(AlertReader(mapping=mapping)(root / "deep-hits-pickle", rejections=log)) == []
    assert len(log) == len(summaries["deep-hits-pickle"]["files"])
    assert all("--allow-pickle" in rejection.reason for rejection in log)
    with pytest.warns(PickleWarning, match="runs any code"):
        alerts = list(AlertReader(mapping=mapping, allow_pickle=True)(root / "deep-hits-pickle"))
    assert len(alerts) == summaries["deep-hits-pickle"]["rows"]
    with open(summaries["deep-hits-pickle"]["files"][0], "rb") as handle:
        assert handle.read(2) == b"\x80\x02"  # pickle protocol 2, as Python 2 wrote


def test_convert_turns_pickles_into_npz_read_without_pickle(exported, tmp_path):
    from stampnet.data.convert import convert_pickles

    root, summaries = exported
    with pytest.warns(PickleWarning):
        written = convert_pickles(root / "deep-hits-pickle", tmp_path / "npz")
    assert len(written) == len(summaries["deep-hits-pickle"]["files"])
    mapping = load_mapping(summaries["deep-hits-npz"]["mapping"])
    converted = list(AlertReader(mapping=mapping)(tmp_path / "npz"))
    original = list(AlertReader(mapping=mapping)(root / "deep-hits-npz"))
    assert [a.candid for a in converted] == [a.candid for a in original]
    for a, b in zip(converted, original, strict=True):
        np.testing.assert_array_equal(a.stamps, b.stamps)
        assert a.label == b.label


def test_bad_rows_are_rejections_naming_file_and_row(exported, tmp_path):
    import pyarrow.parquet as parquet

    root, summaries = exported
    path = summaries["alerce-table"]["files"][0]
    table = parquet.read_table(path).to_pandas()
    table.loc[3, "cutoutScience"] = b"\x1f\x8b not gzip"
    table.loc[5, "cutoutTemplate"] = None
    (tmp_path / "t").mkdir()
    table.to_parquet(tmp_path / "t" / "bad.parquet")
    log = RejectionLog(warn=False)
    alerts = list(
        AlertReader(mapping=load_mapping(summaries["alerce-table"]["mapping"]))(
            tmp_path / "t", rejections=log
        )
    )
    assert len(alerts) == len(table) - 2
    assert [r.source.rsplit("#", 1)[1] for r in log] == ["3", "5"]
    assert "cutoutScience" in log.rejections[0].reason
    assert log.rejections[0].candid == int(table.loc[3, "candid"])
    assert "cutoutTemplate is missing" in log.rejections[1].reason


def test_csv_and_array_of_different_lengths_is_a_file_rejection(exported, tmp_path):
    root, summaries = exported
    table = next(p for p in summaries["btsbot"]["files"] if p.endswith(".csv"))
    with open(table, newline="") as handle:
        rows = list(csv.reader(handle))
    (tmp_path / "b").mkdir()
    array = table.replace("_cand.csv", "_triplets.npy")
    np.save(tmp_path / "b" / "x_triplets.npy", np.load(array)[:-1])
    with open(tmp_path / "b" / "x_cand.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    log = RejectionLog(warn=False)
    reader = AlertReader(mapping=load_mapping(summaries["btsbot"]["mapping"]))
    assert AlertReader.resolve_sources(reader, tmp_path / "b") == [tmp_path / "b" / "x_cand.csv"]
    list(reader(tmp_path / "b", rejections=log))
    (rejection,) = log
    assert "same candidates in the same order" in rejection.reason


def test_deep_hits_like_pickles_build_as_21x21x4_real_bogus_with_given_splits(
    ztf_dir, tmp_path, capsys
):
    """Real alerts as Deep-HiTS chunks (21x21 crops, 1 = real, protocol-2 pickles in split
    folders): `stampnet build --allow-pickle` guesses the preset, keeps the folders' splits."""
    from stampnet.cli import main

    summary = quietly(
        export_alerts,
        subset(ztf_dir),
        tmp_path / "flat",
        "deep-hits-pickle",
        labels=ztf_dir / "labels.csv",
        chunk_rows=8,
        crop=21,
        real_bogus=True,
    )
    files = sorted(summary["files"])
    assert len(files) >= 3
    chunks = {}
    for index, path in enumerate(files):
        split = ("train", "validation", "test")[min(index, 2)] if index < 3 else "train"
        target = tmp_path / "deep_hits" / split / f"chunk{index}.pkl"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        chunks[split] = chunks.get(split, 0) + len(np.load(path, allow_pickle=True)["labels"])
    out = tmp_path / "built"
    argv = ["build", "--source", str(tmp_path / "deep_hits"), "--out", str(out)]
    with pytest.warns(PickleWarning):
        assert main([*argv, "--allow-pickle"]) == 0
    card = json.loads((out / "dataset_card.json").read_text())
    assert card["stamp_shape"] == [21, 21, 4] and card["class_names"] == ["bogus", "real"]
    assert card["channels"] == ["template", "science", "difference", "snr_difference"]
    assert card["reading"]["allow_pickle"] is True
    counts = {split: sum(per.values()) for split, per in card["counts"]["alerts"].items()}
    assert counts == chunks
    assert "21x21x4" in capsys.readouterr().out


def test_stamps_only_table_classifies_with_missing_features_marked(
    exported, alerce_2020_model, tmp_path
):
    """ALeRCE test tables often carry stamps only: no flag needed (the preset is guessed from
    the columns), and every row says the model's 26 features were missing."""
    import pyarrow.parquet as parquet

    from stampnet.cli import main

    root, summaries = exported
    path = summaries["alerce-table"]["files"][0]
    columns = ["oid", "class", "cutoutScience", "cutoutTemplate", "cutoutDifference"]
    (tmp_path / "table").mkdir()
    parquet.write_table(parquet.read_table(path, columns=columns), tmp_path / "table" / "t.parquet")
    out = tmp_path / "p.csv"
    argv = ["classify", "--model", str(alerce_2020_model), "--source", str(tmp_path / "table")]
    assert main([*argv, "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == parquet.ParquetFile(path).metadata.num_rows
    assert table["rejected"].isna().all() and (table["missing_features"] == 26).all()
    assert table["source"].str.contains("t.parquet#").all()


def test_a_preset_does_not_turn_fink_packets_into_table_rows(exported, ztf_dir):
    from stampnet.data.mapping import preset

    root, summaries = exported
    fink = ztf_dir / SUBSET[-1]
    log = RejectionLog(warn=False)
    reader = AlertReader(mapping=preset("alerce-table"))
    alerts = list(reader([fink, root / "alerce-table"], rejections=log))
    from_fink = [a for a in alerts if a.source.startswith(str(fink))]
    assert len(log) == 0 and len(alerts) == len(from_fink) + summaries["alerce-table"]["rows"]
    assert from_fink and all(a.schema_version for a in from_fink)  # read as packets
