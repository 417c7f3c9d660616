"""The Beam build (DirectRunner, 2 worker processes) writes what the single-process build writes:
the same examples (decoded, every feature), in the same splits, with the same dataset card, for
ZTF packets and for a user's own stamp files. Needs the ``beam`` extra.

The whole shared sample is compared by ``benchmarks/build_beam.py`` (minutes on 2 cores)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from stampnet.data.alert import RejectionWarning
from stampnet.data.beam_summary import check_complete
from stampnet.data.card import load_card
from stampnet.data.compare import card_differences, differences, digests

pytest.importorskip("apache_beam")

#: Two nights of real alerts (25 alerts of 25 objects) and ZTF's
#: reference packets, which hold one alert in several schema versions: the newest must win,
#: whichever worker decodes which file.
NIGHTS = ("20191115", "20231012")


def build_both(sources, root, **kwargs):
    from stampnet.data.beam_build import build_dataset_beam
    from stampnet.data.build import build_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectionWarning)
        build_dataset(sources, root / "plain", **kwargs)
        build_dataset_beam(sources, root / "beam", num_workers=2, **kwargs)
    return root / "plain", root / "beam"


def assert_same_build(plain, beam):
    assert card_differences(plain, beam) == []
    expected = digests(plain)
    assert sum(len(split) for split in expected["alerts"].values()) > 0
    assert differences(expected, digests(beam)) == []


def test_beam_build_writes_the_same_examples_splits_and_card(ztf_dir, tmp_path):
    files = [f"alerts/ztf_public_{night}.tar.gz" for night in NIGHTS]
    sources = [ztf_dir / f for f in files] + [ztf_dir / "schema_versions"]
    labels = pd.read_csv(ztf_dir / "labels.csv")
    labels[labels["file"].isin(files)].to_csv(tmp_path / "labels.csv", index=False)
    plain, beam = build_both(sources, tmp_path, labels=tmp_path / "labels.csv")
    assert_same_build(plain, beam)
    rejections = pd.read_json(beam / "rejections.jsonl.gz", lines=True)
    assert "duplicate candid" in set(rejections["reason"])
    # Written aside and swapped in: nothing but the dataset is left beside it.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["beam", "labels.csv", "plain"]
    # A runner that drops records fails the build instead of publishing a smaller dataset.
    check_complete(Counted(load_card(beam), lost=0), beam)
    with pytest.raises(RuntimeError, match=r"lost data: \d+ alert records decoded"):
        check_complete(Counted(load_card(beam), lost=1), beam)


class Counted:
    """What ``check_complete`` reads of a pipeline's summary, from a card; ``lost`` records
    decoded and never kept."""

    def __init__(self, card: dict, lost: int):
        self.card = card
        duplicates = card["rejection_counts"].get("duplicate candid", 0)
        self.alerts_decoded = card["num_alerts"] + duplicates + lost
        self.rejections = RejectionCounts(card["rejection_counts"])

    def num_alerts(self) -> int:
        return self.card["num_alerts"]

    def counts(self) -> dict:
        return self.card["counts"]


class RejectionCounts:
    def __init__(self, counts: dict):
        self._counts = counts

    def counts(self) -> dict:
        return self._counts


@pytest.mark.slow  # an export and two more builds
def test_beam_build_reads_own_data_like_the_plain_build(ztf_dir, tmp_path):
    from stampnet.data.export import export_alerts
    from stampnet.data.mapping import load_mapping
    from stampnet.data.own import AlertReader

    night = ztf_dir / f"alerts/ztf_public_{NIGHTS[1]}.tar.gz"
    summary = export_alerts(
        [night], tmp_path / "own", "alerce-table", labels=ztf_dir / "labels.csv", chunk_rows=8
    )
    reader = AlertReader(mapping=load_mapping(summary["mapping"]))
    plain, beam = build_both(tmp_path / "own", tmp_path / "built", reader=reader)
    assert_same_build(plain, beam)
