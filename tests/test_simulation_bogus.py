"""Simulated bogus alerts look like the 125 labelled real ones of ``../shared/data/ztf``
(drb < 0.1): bad subtractions of catalogued stars, and satellites crossing the field. One
simulation of 80 bogus objects serves every test."""

from __future__ import annotations

import numpy as np
import pytest

from stampnet.data.labels import LabelTable
from stampnet.data.readers import RejectionLog, iter_alerts
from stampnet.features import METADATA_FIELDS
from stampnet.simulation.simulate import simulate
from tests.simulation_helpers import class_fields, labelled_real


@pytest.fixture(scope="module")
def bogus(ztf_dir, tmp_path_factory) -> dict:
    """(source, labels) of the real bogus alerts and of 80 simulated bogus objects (one alert
    each)."""
    scratch = tmp_path_factory.mktemp("bogus")
    simulate(scratch, classes_=("bogus",), workers=1, num_objects=80, seed=5, max_alerts=1)
    return {
        "real": labelled_real(ztf_dir, "bogus"),
        "simulated": (scratch / "alerts", LabelTable.from_csv(scratch / "labels.csv")),
    }


def test_bogus_alerts_are_mostly_bad_subtractions_of_catalogued_stars(bogus):
    real, simulated = (
        class_fields(*bogus[sample], "bogus", ("distnr", "isdiffpos"))
        for sample in ("real", "simulated")
    )

    def near_and_negative(fields):
        near = (fields[:, 0] >= 0) & (fields[:, 0] < 2.0)  # pixels to a reference source
        return float(near.mean()), float(fields[:, 1].mean())  # isdiffpos 'f' -> 1

    # Real (125 alerts): 0.56 within 2 pixels of a catalogued source, 0.64 negative. Simulated
    # here (80 alerts): 1.5.2 0.35 and 0.33 (seed 6: 0.25, 0.16); 1.6.2 0.56, 0.50 (0.51, 0.46).
    assert len(real) >= 100 and len(simulated) >= 80
    (real_near, real_negative), (near, negative) = map(near_and_negative, (real, simulated))
    assert real_near > 0.4 and real_negative > 0.5, (real_near, real_negative)
    assert near > 0.42 and negative > 0.38, (near, negative)


def _bogus_near_sources(source, labels) -> np.ndarray:
    """(peak, opposite lobe) of the difference stamp's central 11x11 pixels, in sigmas of its
    background, for the bogus alerts of ``source`` within 2 pixels of a reference-image source."""
    rows = []
    for alert in iter_alerts(source, rejections=RejectionLog()):
        distnr = alert.metadata[METADATA_FIELDS.index("distnr")]
        if labels.label_for(alert.object_id, alert.candid) != "bogus" or not 0 <= distnr < 2:
            continue
        if tuple(alert.original_shape) != (63, 63):
            continue
        difference = np.where(alert.stamp_mask[..., 2], alert.stamps[..., 2], np.nan)
        median = np.nanmedian(difference)
        sigma = 1.4826 * np.nanmedian(np.abs(difference - median))
        core = (difference[26:37, 26:37] - median) / sigma
        rows.append([np.nanmax(core), -np.nanmin(core)])
    return np.array(rows, dtype=np.float64)


def test_bad_subtractions_of_stars_leave_a_one_signed_core_as_real_ones_do(bogus):
    real, simulated = (_bogus_near_sources(*bogus[sample]) for sample in ("real", "simulated"))
    # Medians of (peak, opposite lobe) in sigmas (the stamp shows the candidate positive):
    # real (64 alerts) 17.1 and 2.95, i.e. no opposite lobe beyond the noise's own extremes.
    # Simulated here: 1.6.2 (template misregistered by 0.1-0.6 px: dipoles) 56.5 and 20.1
    # (seed 6: 66.3, 31.0); 1.6.4 (the source's flux off by 4-30% in the science exposure) 20.8
    # and 2.58 (seed 6: 71.0, 2.54). The peak varies too much between seeds to test here.
    assert len(real) >= 50 and len(simulated) >= 30, (len(real), len(simulated))
    real_lobe, lobe = np.median(real[:, 1]), np.median(simulated[:, 1])
    assert real_lobe < 4.0 and lobe < 4.0, (real_lobe, lobe)


def _peaks(image: np.ndarray, sigmas: float = 5.0) -> tuple:
    """(x, y) of the local maxima above ``sigmas`` of the background, and the image in sigmas."""
    filled = np.where(np.isfinite(image), image, np.nanmedian(image))
    median = np.median(filled)
    scaled = (filled - median) / max(1.4826 * np.median(np.abs(filled - median)), 1e-12)
    padded = np.pad(scaled, 1, constant_values=-np.inf)
    size = scaled.shape[0]
    neighbours = np.max(
        [padded[1 + dy : size + 1 + dy, 1 + dx : size + 1 + dx] for dy in (-1, 0, 1)
         for dx in (-1, 0, 1) if dy or dx],
        axis=0,
    )  # fmt: skip
    ys, xs = np.nonzero((scaled > sigmas) & (scaled >= neighbours))
    return xs, ys, scaled


def crossed_by_a_trail(stamps: np.ndarray, mask: np.ndarray, centre: int = 31) -> bool:
    """Whether the candidate is one of a row of sources in the difference that the template lacks:
    two more peaks as bright within a factor 3, on one line with it (within 1.5 px), either side
    of it or one twice as far as the other (glints at a steady period)."""
    xs, ys, difference = _peaks(np.where(mask[..., 2] > 0, stamps[..., 2], np.nan))
    template = _peaks(np.where(mask[..., 1] > 0, stamps[..., 1], np.nan))[2]
    box = difference[centre - 2 : centre + 3, centre - 2 : centre + 3]
    cy, cx = np.unravel_index(np.argmax(box), box.shape)
    cx, cy, core = cx + centre - 2, cy + centre - 2, box.max()
    dx, dy = xs - cx, ys - cy
    r = np.hypot(dx, dy)
    as_bright = np.abs(np.log(difference[ys, xs] / core)) < np.log(3)
    kept = (r >= 4) & (template[ys, xs] < 5) & as_bright
    dx, dy, r = dx[kept], dy[kept], r[kept]
    for i in range(r.size):
        for j in range(i):
            off_line = abs(dx[i] * dy[j] - dy[i] * dx[j]) / np.hypot(dx[i] - dx[j], dy[i] - dy[j])
            either_side = dx[i] * dx[j] + dy[i] * dy[j] < 0
            periodic = min(abs(r[i] - 2 * r[j]), abs(r[j] - 2 * r[i])) < 2.0
            if off_line < 1.5 and (either_side or periodic):
                return True
    return False


def _trail_share(source, labels, label: str) -> tuple[int, int]:
    """(alerts crossed by a trail, whole 63x63 alerts) among the alerts of ``label``."""
    crossed = total = 0
    for alert in iter_alerts(source, rejections=RejectionLog()):
        if labels.label_for(alert.object_id, alert.candid) == label:
            if tuple(alert.original_shape) == (63, 63):
                crossed += crossed_by_a_trail(alert.stamps, alert.stamp_mask)
                total += 1
    return crossed, total


def test_satellites_cross_as_many_bogus_alerts_as_real_ones_and_no_asteroid(bogus, ztf_dir):
    # Real: 8 of the 118 whole bogus stamps (rows of glints; a streak is rarer), none of the 299
    # asteroids, which the 1.6.9 transfer runs took these for. Simulated here: 1.6.9 0 of 80;
    # 1.6.10 (satellite glints and streaks, 8 % of the bogus) 6 of 79 (120 objects: 9 of 118).
    real, simulated = (_trail_share(*bogus[sample], "bogus") for sample in ("real", "simulated"))
    asteroids = _trail_share(*labelled_real(ztf_dir, "asteroid"), "asteroid")
    assert real[1] >= 100 and 0.04 < real[0] / real[1] < 0.12, real
    assert asteroids[1] >= 250 and asteroids[0] == 0, asteroids
    assert simulated[1] >= 75 and 0.03 < simulated[0] / simulated[1] < 0.16, simulated
