"""Simulated stamps follow what the real ZTF stamps of ``../shared/data/ztf`` measure: each test
checks one property on a small simulation and on real alerts of a few nights alike."""

from __future__ import annotations

import numpy as np
import pytest

from stampnet.data.readers import RejectionLog, iter_alerts
from stampnet.features import METADATA_FIELDS
from stampnet.simulation import physics
from stampnet.simulation.simulate import simulate
from tests.simulation_helpers import real_and_simulated

#: Real nights holding VS, asteroid and bogus alerts (as tests/test_realism.py).
NIGHTS = ("20191115", "20231012", "20200101", "20180904", "20181230")


def _full_stamps(source):
    """(science, template, difference) of every whole, NaN-free 63x63 alert of ``source``, and
    the candidate's (fwhm, sigmapsf)."""
    stamps, fields = [], []
    for alert in iter_alerts(source, rejections=RejectionLog()):
        if tuple(alert.original_shape) == (63, 63) and alert.stamp_mask.all():
            stamps.append(alert.stamps.astype(np.float64))
            fields.append([alert.metadata[METADATA_FIELDS.index(n)] for n in ("fwhm", "sigmapsf")])
    return stamps, np.array(fields, dtype=np.float64)


@pytest.fixture(scope="module")
def samples(ztf_dir, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("simulation_realism")
    simulate(scratch, num_objects=20, seed=11, workers=1)
    real, real_fields = _full_stamps(
        [ztf_dir / f"alerts/ztf_public_{night}.tar.gz" for night in NIGHTS]
    )
    simulated, simulated_fields = _full_stamps(scratch / "alerts")
    return {
        "real": real,
        "simulated": simulated,
        "fields": {"real": real_fields, "simulated": simulated_fields},
    }


def neighbour_correlation(image: np.ndarray) -> float:
    """Correlation of horizontally adjacent background pixels (sources clipped at 3 sigma)."""
    median = np.median(image)
    scaled = (image - median) / (1.4826 * np.median(np.abs(image - median)))
    left, right = scaled[:, :-1], scaled[:, 1:]
    background = (np.abs(left) < 3) & (np.abs(right) < 3)
    return float(np.corrcoef(left[background], right[background])[0, 1])


@pytest.mark.parametrize("sample", ["real", "simulated"])
def test_science_and_difference_noise_is_white_and_template_noise_is_resampled(samples, sample):
    stamps = samples[sample]
    assert len(stamps) >= 20
    median = np.median(
        [[neighbour_correlation(stamp[..., channel]) for channel in range(3)] for stamp in stamps],
        axis=0,
    )
    science, template, difference = median
    assert abs(science) < 0.08 and abs(difference) < 0.08, median
    assert 0.15 < template < 0.5, median


def field_source_count(template: np.ndarray) -> int:
    """Local maxima above 10 sigma of the template's background, more than 4 pixels from the
    candidate: the field stars and galaxies around it."""
    from scipy import ndimage

    median = np.median(template)
    scaled = (template - median) / (1.4826 * np.median(np.abs(template - median)))
    peaks = (scaled == ndimage.maximum_filter(scaled, 5)) & (scaled > 10)
    rows, cols = np.nonzero(peaks)
    return int((np.hypot(rows - 31, cols - 31) > 4).sum())


def test_templates_hold_field_sources_as_densely_as_real_ones(samples):
    real = np.mean([field_source_count(stamp[..., 1]) for stamp in samples["real"]])
    simulated = np.mean([field_source_count(stamp[..., 1]) for stamp in samples["simulated"]])
    # Mean per alert over the whole labelled real sample: AGN 2.9, SN 3.9, VS 9.2, asteroid 2.2,
    # bogus 17 (a few crowded fields); medians 2, 3, 7, 1, 2. These nights are mostly asteroids
    # and bogus (1.4); the class-balanced simulation sits between (1.4.0 simulated: 1.3).
    assert real > 1.0, real
    assert 2.0 < simulated < 10.0, simulated


def test_built_in_cache_key_follows_the_simulator_source(tmp_path):
    import shutil
    from pathlib import Path

    from stampnet.simulation import builtin

    copy = tmp_path / "simulation"
    shutil.copytree(Path(builtin.__file__).parent, copy)
    assert builtin.source_digest(copy) == builtin.source_digest()
    physics = copy / "physics.py"
    physics.write_text(
        physics.read_text().replace(
            "PSF_WEIGHTS = np.array([0.6115,", "PSF_WEIGHTS = np.array([0.6116,"
        )
    )
    assert builtin.source_digest(copy) != builtin.source_digest()
    assert f"source={builtin.source_digest()}" in builtin.generator_tag(10, 1, 0.5)


def pixel_snr(difference: np.ndarray, fwhm: float) -> float:
    """S/N of a PSF fit at the candidate from the difference stamp's own (white) pixel noise."""
    psf = physics.point_source(31, 31, fwhm if 1.0 < fwhm < 6.0 else 2.2, 1.0)
    median = np.median(difference)
    sigma = 1.4826 * np.median(np.abs(difference - median))
    return float(np.sum((difference - median) * psf) / (sigma * np.sqrt(np.sum(psf * psf))))


@pytest.mark.parametrize("sample", ["real", "simulated"])
def test_faint_alerts_are_as_faint_in_their_pixels_as_their_sigmapsf_says(samples, sample):
    # sigmapsf is the pipeline's error, ~2.5x the white-pixel-noise error of a PSF fit (median
    # of all real alerts at reported S/N 5-8: 2.46, IQR 1.97-4.01; 1.5.1 simulated 3.62).
    fields = samples["fields"][sample]
    reported = 1.0857 / fields[:, 1]
    ratios = [
        pixel_snr(stamp[..., 2], fwhm) / snr
        for stamp, (fwhm, _), snr in zip(samples[sample], fields, reported, strict=True)
        if 5.0 <= snr < 8.0
    ]
    assert len(ratios) >= 10
    assert 1.8 < np.median(ratios) < 3.2, np.median(ratios)


def ring_over_peak(image: np.ndarray, radius: int = 3, min_snr: float = 100.0) -> list[float]:
    """Mean of the ring at ``radius`` pixels over the peak, for each bright local maximum (above
    ``min_snr`` sigma of the background, at least 8 pixels inside the stamp)."""
    from scipy import ndimage

    median = np.median(image)
    sigma = 1.4826 * np.median(np.abs(image - median))
    peaks = (image == ndimage.maximum_filter(image, 7)) & (image - median > min_snr * sigma)
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    ratios = []
    for row, col in zip(*np.nonzero(peaks), strict=True):
        if 8 <= row < image.shape[0] - 8 and 8 <= col < image.shape[1] - 8:
            ring = np.abs(np.hypot(yy - row, xx - col) - radius) < 0.5
            ratios.append(float((image[ring].mean() - median) / (image[row, col] - median)))
    return ratios


@pytest.mark.parametrize("sample", ["real", "simulated"])
def test_bright_stars_have_the_wings_of_real_psfs(samples, sample):
    # Bright sources in the templates: median ring mean at 3 pixels over the peak, real (these
    # nights, 28 sources) 0.047; simulated 1.5.2 (a double Gaussian, 10% halo of twice the
    # width) 0.012; 1.6.1 (Moffat-like, beta 2.7) 0.051.
    ratios = [r for stamp in samples[sample] for r in ring_over_peak(stamp[..., 1])]
    assert len(ratios) >= 10
    assert 0.02 < np.median(ratios) < 0.08, (len(ratios), np.median(ratios))


def test_variable_stars_are_as_bright_in_the_template_as_real_ones(ztf_dir, tmp_path):
    real, simulated = real_and_simulated(
        ztf_dir, tmp_path, "VS", ("magnr",), num_objects=300, seed=5, max_alerts=4
    )
    # magnr (the star in the reference image), median: the 135 labelled real VS alerts 16.0
    # (10-90%: 13.4-18.5); simulated 1.5.2 17.16, 1.6.1 16.38 (100 objects; seed 6: 17.01,
    # 16.40). 100 objects drew medians 16.3-17.0 over seeds 5-8 (1.6.10 and 1.6.11), so the
    # test now draws 300: 1.6.10 16.47, 1.6.11 16.64, 1.6.12 16.88 (seeds 6, 7: 16.37, 16.62);
    # 500 objects of one alert: 1.6.10 16.75, 1.6.11 16.80. The simulated stars are 0.4-0.9 mag
    # fainter than the real ones in the median, not the 1.2 of 1.5.2.
    assert len(real) >= 100 and len(simulated) >= 600
    assert abs(np.median(real[:, 0]) - np.median(simulated[:, 0])) < 1.0, (
        np.median(real[:, 0]),
        np.median(simulated[:, 0]),
    )


def test_supernovae_are_as_bright_and_as_close_to_a_catalogued_source_as_real_ones(
    ztf_dir, tmp_path
):
    real, simulated = real_and_simulated(
        ztf_dir, tmp_path, "SN", ("magpsf", "distnr"), num_objects=120, seed=5, max_alerts=4
    )

    def bright_and_near(fields):
        near = (fields[:, 1] >= 0) & (fields[:, 1] < 1.0)  # pixels to a reference source
        return float(np.median(fields[:, 0])), float(near.mean())

    # Real (86 alerts): magpsf median 18.98, 0.42 within 1 pixel of a reference-catalogue source
    # (the host's core). Simulated here: 1.6.2 19.58 and 0.01 (hosts of r_eff 1.2-5 px, SNe
    # 0.3-2 r_eff out); 1.6.3 (SNe follow compact hosts' light, peaks to 19.4 mag) 19.17 and 0.33
    # (seed 6: 1.6.2 19.26 and 0.03; 1.6.3 18.91 and 0.20). 40 objects drew too few for a
    # median to hold to 0.35 mag; 120 objects, seeds 5 and 6: 1.6.10 19.23 and 19.13 (0.30 and
    # 0.19), 1.6.11 19.31 and 19.36, 1.6.12 19.36 and 19.28 (0.30 and 0.23); 500 objects of one
    # alert each: 1.6.10 19.48, 1.6.12 19.56 (the real sample's SNe give several alerts each).
    # Round 15's experiments (not kept, see SN_PEAK_FAINT): peaks to 18.9 mag 18.98 and 18.94,
    # 500 objects of one alert 19.29; hosts of r_eff 0.5-3 px 0.47 and 0.38 within 1 pixel.
    assert len(real) >= 80 and len(simulated) >= 300
    (real_mag, real_near), (mag, near) = map(bright_and_near, (real, simulated))
    assert 18.8 < real_mag < 19.3 and real_near > 0.35, (real_mag, real_near)
    assert abs(mag - real_mag) < 0.45 and near > 0.15, (mag, near)


def test_the_reference_catalogue_is_as_deep_as_the_real_one(ztf_dir, tmp_path):
    # Asteroids sit at random field positions: their nearest reference-catalogue source says how
    # deep the catalogue is and how densely its sources lie.
    real, simulated = real_and_simulated(
        ztf_dir, tmp_path, "asteroid", ("magnr", "distnr"), num_objects=60, seed=5, max_alerts=1
    )
    # Medians of (magnr, distnr in pixels): real (300 alerts) 22.86 and 7.9. Simulated here:
    # 1.6.2 (catalogue to 21.5 mag) 20.44 and 15.7 (seed 6: 20.47, 12.9); 1.6.5 (to 23.3)
    # 21.95 and 11.9 (seed 6: 21.69, 11.7).
    assert len(real) >= 250 and len(simulated) >= 40, (len(real), len(simulated))
    (real_mag, real_distance), (mag, distance) = np.median(real, axis=0), np.median(simulated, 0)
    assert real_mag > 22.0 and real_distance < 10.0, (real_mag, real_distance)
    assert mag > 21.3 and distance < 14.5, (mag, distance)


PS1_FIELDS = ("distpsnr1", "sgscore1", "distpsnr2", "sgscore2", "distpsnr3", "sgscore3")


def _ps1_summary(fields: np.ndarray) -> dict:
    """The PS1 cross-match as ZTF lists it, from rows of ``PS1_FIELDS``."""
    distances, scores = fields[:, 0::2], fields[:, 1::2]
    listed = distances > -900
    return {
        "second_distance": float(np.median(distances[:, 1][listed[:, 1]])),
        "farthest": float(distances[listed].max()),
        "unscored": float(np.isclose(scores[listed], 0.5).mean()),
        "nearest_pointlike": float((scores[:, 0][listed[:, 0]] > 0.8).mean()),
        "nearest_extended": float((scores[:, 0][listed[:, 0]] < 0.2).mean()),
        "neighbours_pointlike": float((scores[:, 1:][listed[:, 1:]] > 0.8).mean()),
    }


def test_ps1_sources_are_listed_and_scored_as_ztf_does(ztf_dir, tmp_path):
    # What a model with features reads of the PS1 cross-match. Real, 28 labelled AGN alerts:
    # second PS1 source median 10.2" away, nearest scored > 0.8 in 43 % and < 0.2 in 43 %
    # (quasars and resolved Seyferts). 1.6.5 listed the host galaxy as a second source at 0.03"
    # and scored nuclei beta(2, 2.5) (here 3 % and ~14 %); 1.6.6 lists a nucleus and its host
    # once: 12.4", 41 % and 42 % (seed 6: 13.5", 34 %, 40 %); 1.6.8, which draws them once per
    # object: 12.4", 43 % and 33 % (seed 6: 12.9", 46 %, 37 %).
    real, simulated = real_and_simulated(
        ztf_dir, tmp_path / "agn", "AGN", PS1_FIELDS, num_objects=30, seed=5, max_alerts=4
    )
    real, simulated = _ps1_summary(real), _ps1_summary(simulated)
    assert real["second_distance"] > 5.0 and real["farthest"] <= 30.0, real
    assert min(real["nearest_pointlike"], real["nearest_extended"]) > 0.3, real
    assert simulated["second_distance"] > 5.0 and simulated["farthest"] <= 30.0, simulated
    assert min(simulated["nearest_pointlike"], simulated["nearest_extended"]) > 0.25, simulated
    # Real VS (135 alerts): 22 % of the listed PS1 sources unscored (sgscore 0.5), 35 % of the
    # second and third scored > 0.8, since most neighbours are faint. 1.6.5: none unscored,
    # 74-76 % point-like, and matches up to 54" (ZTF searches 30"). 1.6.6: 12 % and 48 %
    # (seed 6: 15 %, 41 %); 1.6.8: 15 % and 49 % (seed 6: 12 %, 44 %).
    real, simulated = real_and_simulated(
        ztf_dir, tmp_path / "vs", "VS", PS1_FIELDS, num_objects=30, seed=5, max_alerts=4
    )
    real, simulated = _ps1_summary(real), _ps1_summary(simulated)
    assert real["unscored"] > 0.1 and real["neighbours_pointlike"] < 0.45, real
    assert simulated["unscored"] > 0.05 and simulated["neighbours_pointlike"] < 0.6, simulated
    assert simulated["farthest"] <= 30.0, simulated
