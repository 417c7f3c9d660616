"""The simulator writes genuine ZTF-format alerts, deterministically, with each class's physics."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import tarfile
import warnings

import fastavro
import numpy as np
import pytest
from astropy.io import fits

from stampnet.data.readers import RejectionLog, iter_alerts, iter_packets
from stampnet.features import METADATA_FIELDS
from stampnet.simulation import builtin, packets
from stampnet.simulation.simulate import simulate


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("simulated")
    summary = simulate(out, num_objects=40, seed=7, workers=1)
    return out, summary


@pytest.fixture(scope="module")
def packets_by_label(simulated):
    out, _ = simulated
    with open(out / "labels.csv") as handle:
        labels = {int(row["candid"]): row["label"] for row in csv.DictReader(handle)}
    grouped = {}
    for _, packet in iter_packets(out / "alerts"):
        grouped.setdefault(labels[packet["candid"]], []).append(packet)
    return grouped


def _stamp(packet, field):
    with fits.open(io.BytesIO(gzip.decompress(packet[field]["stampData"]))) as hdul:
        return hdul[0].data.astype(np.float64)


def _tree_bytes(root):
    """sha256 of every file under root: equal digests mean byte-identical files, and a failure
    names the files that differ instead of diffing megabytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path):
    simulate(tmp_path / "a", num_objects=6, seed=3, workers=1)
    simulate(tmp_path / "b", num_objects=6, seed=3, workers=1)
    simulate(tmp_path / "c", num_objects=6, seed=4, workers=1)
    first, second = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert first == second
    assert first != _tree_bytes(tmp_path / "c")


@pytest.mark.slow
def test_worker_processes_do_not_change_the_bytes(tmp_path):
    simulate(tmp_path / "one", num_objects=8, seed=5, workers=1)
    simulate(tmp_path / "two", num_objects=8, seed=5, workers=2)
    assert _tree_bytes(tmp_path / "one") == _tree_bytes(tmp_path / "two")


def test_alerts_pass_the_reader_with_zero_rejections(simulated):
    out, summary = simulated
    log = RejectionLog()
    alerts = list(iter_alerts(out / "alerts", rejections=log))
    assert log.rejections == []
    assert len(alerts) == summary["num_alerts"]
    with open(out / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {int(row["candid"]) for row in rows} == {alert.candid for alert in alerts}
    assert {alert.schema_version for alert in alerts} == {"4.02"}
    for alert in alerts:
        present = ~np.isnan(alert.metadata)
        for name in ("sgscore1", "distpsnr1", "fwhm", "magpsf", "sigmapsf", "ndethist", "rb"):
            assert present[METADATA_FIELDS.index(name)], name
        assert 0 < alert.metadata[METADATA_FIELDS.index("sigmapsf")] <= 1.0857 / 5 + 1e-6


def test_archive_layout_matches_the_ztf_public_archive(simulated):
    out, summary = simulated
    tarball = sorted((out / "alerts").glob("ztf_public_*.tar.gz"))[0]
    with tarfile.open(tarball, "r|gz") as archive:  # streaming read, as brokers do
        member = archive.next()
        assert member.name.endswith(".avro") and member.uid == 0
        reader = fastavro.reader(archive.extractfile(member))
        assert reader.writer_schema["name"] == "ztf.alert"
        packet = next(reader)
    assert member.name == f"{packet['candid']}.avro"
    assert tarball.name == f"ztf_public_{packets.night_name(packet['candidate']['jd'])}.tar.gz"


def test_stamps_open_in_astropy_like_real_cutouts(packets_by_label):
    packet = packets_by_label["SN"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no VerifyWarning: the hand-written header is valid
        with fits.open(io.BytesIO(gzip.decompress(packet["cutoutScience"]["stampData"]))) as hdul:
            header, data = hdul[0].header, hdul[0].data
    assert header["BITPIX"] == -32 and data.dtype.byteorder == ">"
    assert data.shape[0] <= 63 and data.shape[1] <= 63


def test_asteroids_are_absent_from_the_template_and_alert_once(packets_by_label):
    for packet in packets_by_label["asteroid"]:
        assert packet["candidate"]["ndethist"] == 1
        # Earlier visits of the field are upper limits only: nothing was there.
        assert all(entry["magpsf"] is None for entry in packet["prv_candidates"] or [])
        science, template = _stamp(packet, "cutoutScience"), _stamp(packet, "cutoutTemplate")
        if science.shape != (63, 63):
            continue
        background = np.nanmedian(template)
        noise = 1.4826 * np.nanmedian(np.abs(template - background))
        core = template[29:34, 29:34]
        assert np.nanmean(core) - background < 5 * noise  # nothing at the asteroid's place
        assert np.nanmax(science[29:34, 29:34]) - np.nanmedian(science) > 5 * noise


def test_variable_stars_are_in_the_template_and_vary_both_ways(packets_by_label):
    signs = set()
    for packet in packets_by_label["VS"]:
        template = _stamp(packet, "cutoutTemplate")
        if template.shape == (63, 63):
            background = np.nanmedian(template)
            noise = 1.4826 * np.nanmedian(np.abs(template - background))
            assert np.nanmax(template[29:34, 29:34]) - background > 10 * noise
        assert packet["candidate"]["sgscore1"] > 0.8
        signs.add(packet["candidate"]["isdiffpos"])
    assert signs == {"t", "f"}


def test_supernovae_sit_on_hosts_and_have_light_curves(packets_by_label):
    objects = {}
    for packet in packets_by_label["SN"]:
        objects.setdefault(packet["objectId"], []).append(packet["candidate"])
    assert max(len(candidates) for candidates in objects.values()) >= 3
    for candidates in objects.values():
        ndethist = [c["ndethist"] for c in sorted(candidates, key=lambda c: c["jd"])]
        assert ndethist == sorted(ndethist)  # the history grows
    offsets = [c["distnr"] for cs in objects.values() for c in cs if c["distnr"] > 0]
    assert np.median(offsets) > 0.5  # offset from the host's nucleus


def test_bogus_scores_are_lower_than_real_ones(packets_by_label):
    bogus = np.median([p["candidate"]["drb"] for p in packets_by_label["bogus"]])
    real = np.median([p["candidate"]["drb"] for p in packets_by_label["SN"]])
    assert bogus < 0.5 < real


def test_invalid_arguments_are_rejected_with_the_value(tmp_path):
    with pytest.raises(ValueError, match="difficulty"):
        simulate(tmp_path, num_objects=2, difficulty=2.0)
    with pytest.raises(ValueError, match="max_alerts must be >= 1, received 0"):
        simulate(tmp_path, num_objects=2, max_alerts=0)
    with pytest.raises(ValueError, match="size"):
        builtin.ensure_builtin_dataset(tmp_path, size="huge")


@pytest.mark.slow
def test_builtin_dataset_builds_once_and_rebuilds_for_a_new_simulator(tmp_path, monkeypatch):
    from stampnet.data.card import card_path, load_card

    data_dir = builtin.ensure_builtin_dataset(tmp_path, size=10, seed=1)
    card = load_card(data_dir)
    assert card["rejections"] == []
    assert card["generator"] == builtin.generator_tag(10, 1, builtin.DEFAULT_DIFFICULTY)
    assert set(card["class_names"]) == {"AGN", "SN", "VS", "asteroid", "bogus"}
    built = card_path(data_dir).stat().st_mtime_ns
    assert builtin.ensure_builtin_dataset(tmp_path, size=10, seed=1) == data_dir
    assert card_path(data_dir).stat().st_mtime_ns == built  # cached: not rebuilt
    monkeypatch.setattr(builtin, "SIMULATOR_VERSION", "test-version")
    builtin.ensure_builtin_dataset(tmp_path, size=10, seed=1)
    assert "test-version" in load_card(data_dir)["generator"]
    # A card from before --no-match-as missing (round 12's) is rebuilt, not refused at training.
    old = {k: v for k, v in load_card(data_dir).items() if k != "feature_stats_no_match_missing"}
    card_path(data_dir).write_text(json.dumps(old))
    builtin.ensure_builtin_dataset(tmp_path, size=10, seed=1)
    assert "feature_stats_no_match_missing" in load_card(data_dir)


@pytest.mark.slow
def test_concurrent_first_uses_build_the_builtin_dataset_once(tmp_path):
    # Two commands on a fresh clone, or the workers of a cluster job, all find no built-in data:
    # without the build lock each simulated and wrote the same dataset folder at once.
    import os
    import subprocess
    import sys

    code = (
        "import sys; from stampnet.simulation.builtin import ensure_builtin_dataset; "
        "print(ensure_builtin_dataset(sys.argv[1], size=6, seed=2))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert sum("simulating" in output for output in outputs) == 1, outputs
    from stampnet.data.card import load_card

    card = load_card(builtin.builtin_dir(tmp_path, 6))
    assert card["generator"] == builtin.generator_tag(6, 2, builtin.DEFAULT_DIFFICULTY)
    assert card["num_objects"] == 6


def test_sky_rotations_agree_with_the_feature_code():
    from stampnet.simulation import classes
    from stampnet.sky import sky_coordinates

    rng = np.random.default_rng(0)
    for label in ("asteroid", "VS", "SN"):
        ra, dec, gal_lat = classes.sky_position(rng, label)
        reference = sky_coordinates(ra, dec)
        assert abs(float(reference["gal_lat"]) - gal_lat) < 1e-3
    ra, dec = classes._from_frame(classes.ECLIPTIC, 120.0, 3.0)
    assert abs(float(sky_coordinates(ra, dec)["ecl_lat"]) - 3.0) < 1e-3
