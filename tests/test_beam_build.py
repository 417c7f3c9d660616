"""The Beam build (DirectRunner, 2 worker processes) writes what the single-process build writes:
the same examples, in the same splits, with the same dataset card. Needs the ``beam`` extra."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("apache_beam")
pytestmark = pytest.mark.slow  # two builds of a sample subset, one of them through Beam

#: Five nights of real alerts (about 70 alerts of 50 objects, every split non-empty) and the
#: schema-version packets.
NIGHTS = ("20191115", "20231012", "20200101", "20180904", "20181230")


@pytest.fixture(scope="module")
def both_builds(ztf_dir, tmp_path_factory):
    from stampnet.data.beam_build import build_dataset_beam
    from stampnet.data.build import build_dataset

    root = tmp_path_factory.mktemp("beam")
    files = [f"alerts/ztf_public_{night}.tar.gz" for night in NIGHTS]
    # ZTF's reference packets hold one alert in several schema versions: the newest must win,
    # whichever worker decodes which file.
    sources = [ztf_dir / f for f in files] + [ztf_dir / "schema_versions"]
    labels = pd.read_csv(ztf_dir / "labels.csv")
    labels[labels["file"].isin(files)].to_csv(root / "labels.csv", index=False)
    plain = build_dataset(sources, root / "plain", labels=root / "labels.csv")
    beam = build_dataset_beam(sources, root / "beam", labels=root / "labels.csv", num_workers=2)
    return (root / "plain", plain), (root / "beam", beam)


def examples(data_dir, config: str, split: str) -> dict:
    from stampnet.data.builder import load_builder

    key = "candid" if config == "alerts" else "object_id"
    dataset = load_builder(data_dir, config).as_dataset(split=split)
    found = {}
    for example in dataset.as_numpy_iterator():
        found[example[key] if config == "alerts" else example[key].decode()] = example
    return found


def test_beam_build_has_the_same_card(both_builds):
    (_, plain), (_, beam) = both_builds
    for field in ("counts", "class_names", "num_alerts", "num_objects", "num_alerts_read"):
        assert beam[field] == plain[field], field
    np.testing.assert_allclose(
        beam["feature_stats"]["mean"], plain["feature_stats"]["mean"], rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        beam["feature_stats"]["std"], plain["feature_stats"]["std"], rtol=1e-9, atol=1e-12
    )

    def rejections(card):
        return sorted((r["source"], r["candid"] or 0, r["reason"]) for r in card["rejections"])

    assert rejections(beam) == rejections(plain)
    assert any(r[2] == "duplicate candid" for r in rejections(beam))


@pytest.mark.parametrize("config", ["alerts", "sequences"])
def test_beam_build_writes_the_same_examples_in_the_same_splits(both_builds, config):
    (plain_dir, plain), (beam_dir, _) = both_builds
    for split in plain["counts"][config]:
        expected, found = examples(plain_dir, config, split), examples(beam_dir, config, split)
        assert sorted(found) == sorted(expected), (config, split)
        for key, example in expected.items():
            for name, value in example.items():
                np.testing.assert_array_equal(found[key][name], value, err_msg=f"{key} {name}")
