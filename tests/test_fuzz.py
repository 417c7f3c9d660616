"""Fuzzing the readers with mutated real alerts: a seeded few hundred cases (the script: more)."""

from __future__ import annotations

import base64
import itertools
import math

import numpy as np
import pytest

from stampnet.data.alert import Alert
from stampnet.data.stamps import MAX_ABS_PIXEL, stack_stamps
from stampnet.features import METADATA_FIELDS, metadata_vector
from stampnet.layers.preprocessing import StampPreprocessing
from stampnet.testing import fuzz, fuzz_checks, mutators

CI_CASES = 300


@pytest.fixture(scope="module")
def corpus(ztf_dir):
    return mutators.load_corpus(ztf_dir)


def test_seeded_fuzz_finds_no_crash_hang_nan_or_lost_input(ztf_dir):
    report = fuzz.run_fuzz(ztf_dir, CI_CASES, seed=1234, sample_every=10)
    assert report.cases == CI_CASES
    assert report.clean, report.summary()
    assert report.alerts > 0 and report.rejections > 0 and report.model_inputs_checked > 0
    assert {"damage_packet", "damage_member", "damage_row", "truncate"} <= set(report.mutators)
    assert {"damage_arrays", "damage_table", "damage_csv"} <= set(report.mutators)


def test_cases_are_reproducible_and_cover_every_kind(corpus):
    first = [mutators.make_case(corpus, 7, index) for index in range(40)]
    again = [mutators.make_case(corpus, 7, index) for index in range(40)]
    assert [case.data for case in first] == [case.data for case in again]
    kinds = {case.filename.split(".", 1)[1] for case in first}
    assert (
        {"avro", "tar.gz", "parquet"} < kinds <= {"avro", "tar.gz", "parquet", "npz", "h5", "csv"}
    )
    assert {seed.kind for seed in corpus} == set(mutators.MUTATORS)


def test_id_arrays_cast_to_integers_fall_back_to_a_byte_mutation(corpus):
    """Found by the 10,000-case run: damage_arrays cast object ids to integers and raised."""
    assert mutators.make_case(corpus, 0, 2816).mutator.startswith("damage_arrays>")


def test_a_hung_case_is_cut_off_and_counted(ztf_dir):
    report = fuzz.run_fuzz(ztf_dir, 1, timeout=1e-4, sample_every=0)
    assert report.hangs == 1 and report.failures[0].startswith("hang: case 0 while reading")
    assert not report.clean


def test_tensor_checks_catch_bad_alert_arrays():
    stamps = np.zeros((63, 63, 3), np.float32)
    mask = np.ones((63, 63, 3), bool)
    metadata = np.zeros(len(METADATA_FIELDS))
    good = Alert("ZTF", 1, 2.4e6, 1, stamps, mask, metadata, "f", "4.02", (63, 63))
    assert fuzz_checks.tensor_problems(good) == []
    stamps_nan = stamps.copy()
    stamps_nan[0, 0, 0] = np.nan
    metadata_inf = metadata.copy()
    metadata_inf[0] = np.inf
    bad = Alert("ZTF", 1, 2.4e6, 1, stamps_nan, mask, metadata_inf, "f", "4.02", (63, 63))
    assert fuzz_checks.tensor_problems(bad) == ["non-finite stamp pixels", "inf in metadata"]


# ------------------------------------------------------------- what the fuzzer found, fixed
def test_infinite_metadata_is_missing_not_passed_on():
    """Found by fuzzing: candidate.magpsf = inf reached Alert.metadata as inf (NaN = missing)."""
    vector = metadata_vector({"magpsf": math.inf, "sgscore1": -math.inf, "ra": 1e308, "dec": 0.0})
    assert not np.isinf(vector).any()
    assert np.isnan(vector[METADATA_FIELDS.index("magpsf")])


def test_absurd_pixel_values_are_clipped_so_normalised_stamps_stay_finite():
    """Found by fuzzing: a -3.4e38 pixel made the standardised stamp NaN (its square overflows).
    Real ZTF templates hold such -FLT_MAX pixels, so they stay valid (ALeRCE's graph saw them),
    clipped to +-MAX_ABS_PIXEL."""
    rng = np.random.default_rng(0)
    cutouts = [rng.normal(100, 10, (63, 63)).astype(np.float32) for _ in range(3)]
    cutouts[1][5, 5], cutouts[1][6, 6] = -3.4e38, 3.4e38
    cutouts[2][7, 7] = 2 * MAX_ABS_PIXEL
    cutouts[0][3, 3] = np.inf
    stamps, mask, _ = stack_stamps(cutouts)
    assert mask[5, 5, 1] and mask[6, 6, 1] and mask[7, 7, 2] and not mask[3, 3, 0]
    assert stamps[5, 5, 1] == -MAX_ABS_PIXEL and stamps[6, 6, 1] == MAX_ABS_PIXEL
    assert stamps[3, 3, 0] == 0 and mask.sum() == 3 * 63 * 63 - 1
    for normalisation in ("minmax", "standardize"):
        layer = StampPreprocessing(crop_size=63, normalisation=normalisation)
        assert np.isfinite(np.asarray(layer(stamps[None], mask[None].astype("float32")))).all()


def test_metadata_beyond_float32_is_missing_not_inf_in_the_stored_vector():
    """Found by the 10,000-case run: 1e308 is finite in float64 but inf once stored as float32."""
    vector = metadata_vector({"magpsf": 1e308, "sgscore1": -4e38, "ra": 3e38, "dec": 0.0})
    assert np.isnan(vector[METADATA_FIELDS.index("magpsf")])
    assert np.isnan(vector[METADATA_FIELDS.index("sgscore1")])
    assert np.isfinite(vector.astype(np.float32)[np.isfinite(vector)]).all()


def test_parquet_table_losing_rows_without_an_error_is_a_rejection(corpus, tmp_path):
    """Found by the 10,000-case run (seed 7, case 3959): a bit flip left a parquet table whose
    batches held no row although its footer declares 8; the file gave no alert and no rejection."""
    from stampnet.data.alert import RejectionLog
    from stampnet.data.mapping import resolve_mapping
    from stampnet.data.own import AlertReader

    case = mutators.make_case(corpus, 7, 3959)
    assert case.mutator == "flip_bits" and case.filename.endswith(".parquet")
    path = tmp_path / case.filename
    path.write_bytes(case.data)
    log = RejectionLog(warn=False)
    alerts = list(AlertReader(mapping=resolve_mapping(None, "alerce-table"))(path, rejections=log))
    assert len(alerts) + len(log) > 0
    assert any("declares 8 rows" in rejection.reason for rejection in log), log.counts()


def test_model_input_check_reads_a_missing_match_both_ways(ztf_dir):
    """The sampled alerts' features go through both readings of a missing catalogue match (-999,
    or a match listed beyond the search radius): ALeRCE's clipping and the recipe's default,
    where it becomes missing (then 0)."""
    from stampnet.data.readers import RejectionLog, iter_alerts
    from stampnet.features import NO_MATCH, NO_MATCH_FIELDS

    # A night whose alerts hold -999s and PS1 matches listed beyond the 30" search radius.
    night = ztf_dir / "alerts" / "ztf_public_20231018.tar.gz"
    reader = iter_alerts(night, rejections=RejectionLog(warn=False))
    alerts = list(itertools.islice(reader, 200))
    columns = [METADATA_FIELDS.index(name) for name in NO_MATCH_FIELDS]
    no_match = [alert for alert in alerts if (alert.metadata[columns] == NO_MATCH).any()]
    beyond = [alert for alert in alerts if alert.metadata[METADATA_FIELDS.index("distpsnr1")] > 30]
    assert no_match and beyond, "the night should hold alerts without a catalogue match"
    samples = [
        {**fuzz_checks._encode_arrays(alert), "index": index}
        for index, alert in enumerate(alerts[:20] + no_match[:20] + beyond[:20])
    ]
    assert fuzz_checks.check_model_inputs(samples) == []
    broken = dict(samples[-1], index=99)
    stamps = np.frombuffer(base64.b64decode(broken["stamps"]), np.float32).copy()
    stamps[0] = np.nan  # an unmasked NaN corner pixel: outside the 21x21 crop, inside the 63x63
    broken["stamps"] = base64.b64encode(stamps.tobytes()).decode()
    assert fuzz_checks.check_model_inputs(samples + [broken]) == [(99, "standardized stamps")]
