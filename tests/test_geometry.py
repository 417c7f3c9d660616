import pytest

from stampnet.geometry import ZTF, StampGeometry


def test_cards_without_geometry_hold_ztf_stamps():
    assert StampGeometry.from_card({}) == ZTF
    assert ZTF.shape == (63, 63, 3)


def test_deep_hits_geometry_round_trips_through_the_card():
    geometry = StampGeometry(21, 21, ("template", "science", "difference", "snr_difference"))
    assert StampGeometry.from_card(geometry.to_dict()) == geometry
    assert geometry.channel_index("snr_difference") == 3


def test_mismatch_names_what_differs():
    deep_hits = StampGeometry(21, 21, ("template", "science", "difference", "snr_difference"))
    with pytest.raises(ValueError, match=r"stamp size 63x63 vs 21x21.*channels"):
        ZTF.check_matches(deep_hits)
    ZTF.check_matches(StampGeometry())


def test_card_with_inconsistent_channels_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        StampGeometry.from_card({"stamp_shape": [21, 21, 3], "channels": ["a", "b"]})
