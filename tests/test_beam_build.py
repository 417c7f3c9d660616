"""The Beam build (DirectRunner, 2 worker processes) writes what the single-process build writes:
the same examples (decoded, every feature), in the same splits, with the same dataset card, for
ZTF packets and a user's own stamp files in one build. Needs the ``beam`` extra, which CI installs
(``.ci/run``): with CI=true a missing Beam fails these tests instead of skipping them.

The whole shared sample is compared by ``benchmarks/build_beam.py`` (minutes on 2 cores)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from stampnet.data.alert import RejectionWarning
from stampnet.data.beam_summary import check_complete
from stampnet.data.card import load_card
from stampnet.data.compare import card_differences, differences, digests
from tests.beam_required import require_beam

require_beam()

#: Two nights of real alerts (25 alerts of 25 objects) and ZTF's reference packets, which hold
#: one alert in several schema versions: the newest must win, whichever worker decodes which file.
NIGHTS = ("20191115", "20231012")
#: A third night (9 alerts), exported as a user's own files (ALeRCE-table parquet, 4 rows each).
OWN_NIGHT = "20200202"


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
    found = digests(beam)
    assert differences(expected, found) == []
    return found


def test_beam_build_writes_the_same_examples_splits_and_card(ztf_dir, tmp_path):
    from stampnet.data.export import export_alerts
    from stampnet.data.mapping import load_mapping
    from stampnet.data.own import AlertReader

    files = [f"alerts/ztf_public_{night}.tar.gz" for night in (*NIGHTS, OWN_NIGHT)]
    labels = pd.read_csv(ztf_dir / "labels.csv")
    labels[labels["file"].isin(files)].to_csv(tmp_path / "labels.csv", index=False)
    own = export_alerts(
        [ztf_dir / files[-1]],
        tmp_path / "own",
        "alerce-table",
        labels=ztf_dir / "labels.csv",
        chunk_rows=4,
    )
    assert own["rows"] == 9 and len(own["files"]) == 3
    sources = [ztf_dir / f for f in files[:-1]] + [ztf_dir / "schema_versions", tmp_path / "own"]
    # One reader for both: packets as the default reader reads them, own files by the mapping.
    reader = AlertReader(mapping=load_mapping(own["mapping"]), history=True)
    plain, beam = build_both(
        sources, tmp_path / "built", labels=tmp_path / "labels.csv", reader=reader
    )
    candids = {
        candid for split in assert_same_build(plain, beam)["alerts"].values() for candid in split
    }
    own_candids = set(pd.concat(pd.read_parquet(path) for path in own["files"])["candid"])
    assert len(own_candids) == 9 and own_candids <= candids
    rejections = pd.read_json(beam / "rejections.jsonl.gz", lines=True)
    assert "duplicate candid" in set(rejections["reason"])
    # Written aside and swapped in: nothing but the dataset is left beside it.
    assert sorted(path.name for path in (tmp_path / "built").iterdir()) == ["beam", "plain"]
    # A runner that drops records fails the build instead of publishing a smaller dataset.
    check_complete(Counted(load_card(beam), lost=0), beam)
    with pytest.raises(RuntimeError, match=r"lost data: \d+ alert records decoded"):
        check_complete(Counted(load_card(beam), lost=1), beam)


def test_beam_build_guards_the_runner_before_it_runs(monkeypatch, ztf_dir, tmp_path):
    from apache_beam.runners.worker import data_plane

    from stampnet.data import beam_build, beam_data_plane

    stream = data_plane.TimeBasedBufferingClosableOutputStream
    if "write" in vars(stream):  # undo an earlier guard in this process, for this test only
        monkeypatch.delattr(stream, "write")
    assert not beam_data_plane.runner_writes_guarded()

    class Stop(Exception):
        pass

    def stop_before_building(*args, **kwargs):
        assert beam_data_plane.runner_writes_guarded()
        raise Stop

    monkeypatch.setattr(beam_build, "_run_pipelines", stop_before_building)
    with pytest.raises(Stop):
        beam_build.build_dataset_beam(
            ztf_dir / "alerts" / "ztf_public_20191115.tar.gz", tmp_path / "built", num_workers=1
        )


class Counted:
    """What ``check_complete`` reads of a pipeline's summary, from a card; ``lost`` records
    decoded and never kept."""

    def __init__(self, card: dict, lost: int):
        self.card = card
        duplicates = card["rejection_counts"].get("duplicate candid", 0)
        self.alerts_decoded = card["num_alerts"] + duplicates + lost
        self.alerts_deduplicated = self.alerts_grouped = card["num_alerts"]
        self.made = self.read = {}
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
