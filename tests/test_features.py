"""Metadata features reproduce the 26 normalised features ALeRCE's 2020 network was fed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stampnet import features, sky
from stampnet.data.readers import iter_packets


@pytest.fixture(scope="module")
def alerce_stats(alerce_2020_dir) -> features.FeatureStats:
    return features.FeatureStats.from_alerce_json(alerce_2020_dir / "feature_norm_stats.json")


def test_alerce_json_has_the_alerce26_features_and_clipping(alerce_stats):
    assert alerce_stats.names == features.ALERCE26
    for name, (low, high) in features.ALERCE_CLIPPING.items():
        index = alerce_stats.names.index(name)
        assert (math.isnan(alerce_stats.clip_low[index]) and low is None) or (
            alerce_stats.clip_low[index] == low
        )
        assert (math.isnan(alerce_stats.clip_high[index]) and high is None) or (
            alerce_stats.clip_high[index] == high
        )


def test_features_match_those_fed_to_alerce_network(ztf_dir, alerce_2020_dir, alerce_stats):
    """Checks isdiffpos, non_detections, clipping, ecliptic/galactic coordinates and z-scoring."""
    expected = pd.read_csv(alerce_2020_dir / "expected_probabilities.csv")
    expected = expected[expected["skipped"] == 0].set_index("candid")
    candidates = {}
    for _, packet in iter_packets(ztf_dir, columns=("candid", "candidate")):
        candidates[packet["candidate"]["candid"]] = packet["candidate"]
    assert len(expected) == 1997 and set(expected.index) <= set(candidates)

    raw = np.stack([features.metadata_vector(candidates[candid]) for candid in expected.index])
    values = raw[:, features.metadata_indices(alerce_stats.names)]
    normalised = alerce_stats.normalise(values)
    reference = expected[[f"f_{name}" for name in alerce_stats.names]].to_numpy()
    assert np.isfinite(reference).all()
    error = np.abs(normalised - reference).max(axis=0)
    named = zip(alerce_stats.names, error, strict=True)
    worst = {name: float(value) for name, value in named if value > 1e-4}
    assert not worst, f"features differ from ALeRCE's by more than 1e-4: {worst}"


@pytest.mark.parametrize(
    "ra, dec, name, expected",
    [
        (266.404988, -28.936178, "gal_lat", 0.0),  # origin of galactic coordinates
        (266.404988, -28.936178, "gal_long", 0.0),
        (266.416817, -29.007825, "gal_long", 359.944),  # Sgr A*
        (192.859508, 27.128336, "gal_lat", 90.0),  # north galactic pole
        (0.0, 0.0, "ecl_lat", 0.0),  # the equinox lies on the ecliptic
        (0.0, 0.0, "ecl_long", 0.0),
        (90.0, 23.4392911, "ecl_lat", 0.0),  # the solstice point, J2000 obliquity
        (90.0, 23.4392911, "ecl_long", 90.0),
        (270.0, 66.5607089, "ecl_lat", 90.0),  # north ecliptic pole
    ],
)
def test_sky_coordinates_of_known_points(ra, dec, name, expected):
    value = float(sky.sky_coordinates(ra, dec)[name])
    if name.endswith("long") and expected == 0.0:
        value = (value + 180.0) % 360.0 - 180.0
    assert value == pytest.approx(expected, abs=2e-3)


def test_hand_computed_metadata_of_a_schema_2_alert(ztf_dir):
    path = ztf_dir / "schema_versions" / "v2.0_472263571115090000.avro"
    (source, packet), *rest = list(iter_packets(path))
    assert not rest and source == str(path)
    candidate = packet["candidate"]
    vector = dict(zip(features.METADATA_FIELDS, features.metadata_vector(candidate), strict=True))
    assert vector["magpsf"] == pytest.approx(candidate["magpsf"])
    assert vector["isdiffpos"] == (0.0 if candidate["isdiffpos"] == "t" else 1.0)
    assert vector["non_detections"] == candidate["ncovhist"] - candidate["ndethist"]
    assert math.isnan(vector["drb"])  # drb arrived with schema 3.3


def test_missing_fields_give_nan_not_a_crash():
    vector = features.metadata_vector({"ra": None, "magpsf": "not a number", "isdiffpos": "?"})
    assert vector.shape == (len(features.METADATA_FIELDS),) and np.isnan(vector).all()
    partial = features.metadata_vector({"ra": 10.0, "dec": -5.0, "ndethist": 3})
    named = dict(zip(features.METADATA_FIELDS, partial, strict=True))
    assert math.isnan(named["non_detections"]) and math.isfinite(named["gal_lat"])


@pytest.mark.parametrize(
    "value, expected", [("t", 0.0), ("f", 1.0), ("1", 0.0), ("0", 1.0), (None, math.nan)]
)
def test_isdiffpos_uses_alerce_encoding(value, expected):
    result = features.isdiffpos_value(value)
    assert result == expected or (math.isnan(result) and math.isnan(expected))


def test_clipping_and_normalisation_by_hand():
    stats = features.FeatureStats.from_values(
        ("fwhm", "chinr", "magpsf"), mean=(2.0, 1.0, 18.0), std=(2.0, 4.0, 1.0)
    )
    values = np.array([[12.0, -3.0, np.nan], [4.0, 20.0, 19.5]])
    expected = np.array([[(10.0 - 2.0) / 2.0, (-1.0 - 1.0) / 4.0, 0.0], [1.0, 3.5, 1.5]])
    np.testing.assert_allclose(stats.normalise(values), expected, rtol=1e-6)


def test_fit_ignores_missing_values_and_all_missing_features():
    values = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, 5.0]])
    stats = features.FeatureStats.fit(("rb", "drb", "magpsf"), values)
    assert stats.mean == (2.0, 0.0, 5.0) and stats.std == (1.0, 1.0, 1.0)
    assert features.FeatureStats.from_dict(stats.to_dict()) == stats


def test_one_alert_and_array_coordinates_agree():
    rng = np.random.default_rng(0)
    ra, dec = rng.uniform(0.0, 360.0, 200), rng.uniform(-89.0, 89.0, 200)
    arrays = sky.sky_coordinates(ra, dec)
    for index in range(0, 200, 7):
        one = sky.sky_coordinates(ra[index], dec[index])
        for name, values in arrays.items():
            assert float(one[name]) == pytest.approx(values[index], abs=1e-7), name
    assert all(np.isnan(value) for value in sky.sky_coordinates(np.nan, 3.0).values())


def test_a_missing_match_is_clipped_by_alerce_and_missing_under_the_missing_encoding(ztf_dir):
    """On real alerts with no PS1 source within 30" (ZTF's -999): ALeRCE's clipping makes it -1,
    the missing encoding leaves it out of the statistics and normalises it to 0, in numpy and in
    the Keras layer alike; every other value is read the same way by both."""

    raw = np.stack(
        [features.metadata_vector(packet["candidate"]) for _, packet in iter_packets(ztf_dir)]
    )
    values = raw[:, features.metadata_indices(features.ALERCE23)]
    no_match = values == features.NO_MATCH
    assert no_match[:, features.ALERCE23.index("distpsnr1")].sum() >= 10
    clip = features.FeatureStats.fit(features.ALERCE23, values)
    missing = features.FeatureStats.fit(features.ALERCE23, values, no_match="missing")
    assert (clip.no_match, missing.no_match) == ("clip", "missing")

    distance = features.ALERCE23.index("distpsnr3")
    matched = values[:, distance][~no_match[:, distance]]
    assert missing.mean[distance] == pytest.approx(matched.mean())
    assert clip.mean[distance] < missing.mean[distance]  # the -1s pull it down

    for stats in (clip, missing):
        assert_layer_matches_numpy(stats, values)
    low = np.asarray(clip.clip_low)
    clipped = (np.where(no_match, low, 0.0) - np.asarray(clip.mean)) / np.asarray(clip.std)
    assert np.allclose(clip.normalise(values)[no_match], clipped[no_match])
    assert (missing.normalise(values)[no_match] == 0).all()
    # A model saved before the encoding existed has no missing_value: ALeRCE's clipping.
    old = {key: value for key, value in clip.to_dict().items() if key != "missing_value"}
    assert features.FeatureStats.from_dict(old) == clip
    # Feature sets without a catalogue match are read the same way under both encodings.
    names = ("magpsf", "fwhm")
    columns = raw[:, features.metadata_indices(names)]
    both = [features.FeatureStats.fit(names, columns, no_match=e) for e in ("clip", "missing")]
    np.testing.assert_array_equal(both[0].normalise(columns), both[1].normalise(columns))


def test_a_ps1_slot_beyond_the_search_radius_is_missing_with_its_score(ztf_dir):
    """The night of 2023-10-18 holds real alerts whose first PS1 slot reads 120", score 0.2
    (and a known asteroid at 60"), beyond ZTF's 30" search radius, while slots 2-3 hold real
    sources. Under the missing encoding
    that slot's distance and score are missing (numpy and the Keras layer alike, also when
    reloaded); ALeRCE's clipping reads them as they are, and statistics saved before the rule
    existed keep doing so."""
    from stampnet.data.card import feature_stats_for

    night = ztf_dir / "alerts" / "ztf_public_20231018.tar.gz"
    packets = iter_packets(night, columns=("candid", "candidate"))
    raw = np.stack([features.metadata_vector(packet["candidate"]) for _, packet in packets])
    values = raw[:, features.metadata_indices(features.ALERCE23)]
    column = {name: index for index, name in enumerate(features.ALERCE23)}
    beyond = values[:, column["distpsnr1"]] > features.MATCH_RADIUS["distpsnr1"]
    assert (len(values), beyond.sum()) == (838, 285)
    assert (values[beyond, column["sgscore1"]] == np.float32(0.2)).all()
    second = values[beyond, column["distpsnr2"]]
    assert ((second == features.NO_MATCH) | (second <= features.MATCH_RADIUS["distpsnr1"])).all()

    clip = features.FeatureStats.fit(features.ALERCE23, values)
    missing = features.FeatureStats.fit(features.ALERCE23, values, no_match="missing")
    listed = values[:, column["distpsnr1"]]
    within = listed[(listed != features.NO_MATCH) & ~beyond]
    assert missing.mean[column["distpsnr1"]] == pytest.approx(within.mean())
    scores = values[:, column["sgscore1"]][(values[:, column["sgscore1"]] >= 0) & ~beyond]
    assert missing.mean[column["sgscore1"]] == pytest.approx(scores.mean())

    for stats in (clip, missing):
        assert_layer_matches_numpy(stats, values)
    first = [column["distpsnr1"], column["sgscore1"]]
    assert (missing.normalise(values)[np.ix_(beyond, first)] == 0).all()
    expected = (120.0 - clip.mean[column["distpsnr1"]]) / clip.std[column["distpsnr1"]]
    np.testing.assert_allclose(clip.normalise(values)[beyond, column["distpsnr1"]], expected)
    # The other slots and fields of those alerts read the same way as without the rule.
    rest = [index for index in range(len(column)) if index not in first]
    saved_before = features.FeatureStats.from_dict(
        {key: value for key, value in missing.to_dict().items() if key[8:] not in ("above", "with")}
    )
    assert not saved_before.missing_above and not saved_before.missing_with
    np.testing.assert_array_equal(
        missing.normalise(values)[:, rest], saved_before.normalise(values)[:, rest]
    )
    assert (saved_before.normalise(values)[beyond, column["distpsnr1"]] > 10).all()
    # A card written before the rule existed gets it from the code.
    card = {"feature_stats_no_match_missing": saved_before.to_dict()}
    assert feature_stats_for(card, "alerce23", "missing") == missing
    # The same alerts list a known asteroid at 60", beyond its 30" radius: no match either.
    solar_names = ("ssdistnr", "ssmagnr")
    solar = raw[:, features.metadata_indices(solar_names)]
    assert (solar[beyond, 0] == 60.0).all() and (solar[~beyond, 0] <= 30.0).all()
    solar_stats = features.FeatureStats.fit(solar_names, solar, no_match="missing")
    assert (solar_stats.normalise(solar)[beyond] == 0).all()
    # A subset without the distance cannot tell the score is not a match.
    alone = missing.select(["sgscore1", "magpsf"])
    assert alone.normalise(values[:, [column["sgscore1"], column["magpsf"]]])[beyond, 0].all()


def assert_layer_matches_numpy(stats, values):
    """The Keras layer, also rebuilt from its config, normalises as the numpy reference does."""
    from stampnet.layers.preprocessing import FeatureNormalization

    layer = FeatureNormalization(stats)
    reloaded = FeatureNormalization.from_config(layer.get_config())
    for normaliser in (layer, reloaded):
        out = np.asarray(normaliser(values.astype(np.float32)))
        np.testing.assert_allclose(out, stats.normalise(values), atol=1e-5)
