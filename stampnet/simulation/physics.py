"""The imaging physics of a ZTF alert: PSF, galaxy profiles, sky, noise, photometry.

Every constant that sets a level is measured on the real sample in ``../shared/data/ztf`` (the
1,564 alerts of ``alerts/*.tar.gz``; measured with the per-alert statistics that
``benchmarks/realism.py`` prints: stamp median / 1.4826 MAD over finite pixels, candidate fields).
Pixel values are in DN of the science exposure (the cutouts' ``BUNIT``), so a source of magnitude m
holds ``10 ** (-0.4 * (m - magzpsci))`` DN in total, as in the real cutouts.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special

from stampnet.constants import STAMP_SIZE

CENTER = STAMP_SIZE // 2  # the candidate sits on pixel (31, 31) of a full 63x63 stamp

#: ZTF readout quadrant size (xpos in [1, 3072], ypos in [1, 3080]); edge-truncated stamps happen
#: within 31 pixels of these borders.
CCD_WIDTH, CCD_HEIGHT = 3072, 3080


@dataclasses.dataclass(frozen=True)
class BandCalibration:
    """Per-band levels measured on the real sample (median and log-normal width)."""

    # candidate.fwhm (pixels): g median 2.35 (IQR 1.86-3.26), r 2.04 (1.59-2.48)
    seeing_median: float
    seeing_log_sigma: float
    # candidate.magzpsci: g median 26.16 (5-95%: 25.40-26.38), r 26.27 (26.16-26.40)
    zero_point: float
    zero_point_sigma: float
    # median of the science stamp (DN): g 90 (5-95%: 63-174), r 214 (IQR 177-263)
    sky_median: float
    sky_log_sigma: float
    # Effective gain (e-/DN) that turns that sky into the measured science noise
    # (1.4826 MAD: g 5.36, r 7.49 DN): sigma^2 = sky / gain + read_noise^2.
    gain: float


CALIBRATION = {
    # Seeing medians are set ~10% above candidate.fwhm, and log-widths below its spread (the
    # reported fwhm adds SExtractor scatter), so that the simulated candidate fwhm and the FWHM
    # measured on the difference stamps match the real sample's (benchmarks/realism.py).
    1: BandCalibration(2.55, 0.26, 26.16, 0.12, 90.0, 0.31, 3.4),
    2: BandCalibration(2.30, 0.24, 26.27, 0.08, 214.0, 0.29, 3.9),
}
#: ZTF read noise, ~8 e- at gain ~6.2 e-/DN.
READ_NOISE_DN = 1.3
#: Template (reference) stamps: 1.4826 MAD g 1.25, r 1.75 DN, i.e. ~4.3x less noise than the
#: science stamps, as a coadd of nframesref ~ 12-28 exposures gives.
NFRAMES_REF_RANGE = (12, 28)
#: Reference images are built from the best-seeing exposures, then resampled onto the science
#: grid. Their PSF, measured on the templates of bright real variable stars (ring mean over the
#: peak at r = 1 pixel: 0.568), is 0.9x the median science seeing here (0.8 gave 0.521).
TEMPLATE_SEEING_FACTOR = 0.9
#: The real diffmaglim is 0.97 mag brighter than 5 sigma of white pixel noise in a PSF aperture
#: (median over the sample): correlated noise of resampled, PSF-matched difference images.
LIMIT_NOISE_FACTOR = 10 ** (0.4 * 0.97)
#: The PSF-fit flux error that sigmapsf reports, over the diffmaglim-based noise, per exposure
#: (log-normal median and width), with a calibration floor that dominates bright sources. Measured
#: as S/N of a PSF fit to the difference stamp's pixels (white noise) over 1.0857 / sigmapsf: real
#: alerts at reported S/N 5-8 median 2.46 (IQR 1.97-4.01), i.e. the pipeline's error is ~2.5x
#: the white-pixel-noise error, scattering from image to image; 1.5.1 simulated 3.62 (3.48-3.82)
#: with a fixed factor of 1.6, so simulated alerts at the threshold were brighter in their pixels
#: than real ones (normalised difference median 0.19 at S/N 5-8, real 0.27).
PSF_NOISE_FACTOR, PSF_NOISE_LOG_SIGMA = 1.1, 0.35
SIGMAPSF_FLOOR = 0.03
#: ~13% of real alerts hold NaN pixels (270 of 2,021; median 6.7% of the pixels when they do);
#: bogus edge and bright-star artefacts add their own masked pixels on top of this rate.
NAN_RATE = 0.10
#: Science noise over the sky + read noise of the calibration, per exposure (log-normal). The
#: calibration above comes from the nightly tarballs (mostly 2019-2020 asteroids and bogus: 1.4826
#: MAD 5.4 DN); the labelled SN, AGN and VS alerts (Fink and ALeRCE test sets, 2019-2025) have
#: 9-14 DN (10-90%: 6-19), so one narrow noise level made noise a cue that real alerts break.
NOISE_EXCESS_MEDIAN, NOISE_EXCESS_LOG_SIGMA = 1.4, 0.4
#: Difference-image noise relative to the science noise (see scenes.Scene.render).
DIFFERENCE_NOISE_SCALE = 0.86
#: 24 of 2,021 real alerts are edge-truncated.
TRUNCATION_RATE = 0.012
#: PSF: a Moffat profile (1 + r^2/alpha^2)^-beta with beta = 2.7, as three Gaussians (weights,
#: sigma per FWHM; a least-squares fit in log to r = 6 FWHM, within ~10%) so that the pixel
#: integration stays separable. Measured on the real stamps of bright (peak > 100 sigma) variable
#: stars, ring means over the peak at r = 2, 3, 4, 5 pixels: template 0.153, 0.044, 0.017, 0.007;
#: science 0.315, 0.112, 0.041, 0.017. The double Gaussian of 1.5.2 (10% halo of twice the
#: width) gave template 0.086, 0.008, 0.002, 0.001 and science 0.158, 0.021, 0.005, 0.003: real
#: ground-based PSFs have power-law wings (Moffat 1969; Racine 1996).
PSF_WEIGHTS = np.array([0.6115, 0.3521, 0.0364])
PSF_SIGMAS_PER_FWHM = np.array([0.3979, 0.8235, 1.8726])
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def _pixel_profiles(centers: np.ndarray, sigmas: np.ndarray, size: int) -> np.ndarray:
    """Unit Gaussians integrated over each pixel (exact, so undersampled PSFs stay right).

    centers (N,), sigmas (K,) -> (N, K, size).
    """
    edges = np.arange(size + 1) - 0.5
    scaled = (edges[None, None, :] - centers[:, None, None]) / (
        np.sqrt(2.0) * sigmas[None, :, None]
    )
    return 0.5 * np.diff(special.erf(scaled), axis=-1)


def point_sources(xs, ys, fluxes, fwhm: float, size: int = STAMP_SIZE) -> np.ndarray:
    """Image (size, size) of point sources of total ``fluxes`` at pixel positions (xs, ys)."""
    xs, ys = np.atleast_1d(xs).astype(np.float64), np.atleast_1d(ys).astype(np.float64)
    fluxes = np.atleast_1d(fluxes).astype(np.float64)
    if xs.size == 0:
        return np.zeros((size, size))
    sigmas = PSF_SIGMAS_PER_FWHM * fwhm
    rows = _pixel_profiles(ys, sigmas, size) * (fluxes[:, None, None] * PSF_WEIGHTS[None, :, None])
    cols = _pixel_profiles(xs, sigmas, size)
    return np.einsum("nky,nkx->yx", rows, cols)


def point_source(x: float, y: float, fwhm: float, flux: float, size: int = STAMP_SIZE):
    """Image (size, size) of one point source of total ``flux`` at pixel position (x, y)."""
    return point_sources(x, y, flux, fwhm, size)


#: Galaxies are rendered on a padded grid so that FFT convolution does not wrap light around.
PAD = 16
GRID = 96  # 63 + 2 * 16 + 1: a size pocketfft transforms fast (2^5 * 3)


def sersic_image(
    flux: float, x: float, y: float, r_eff: float, index: float, axis_ratio: float, angle: float
) -> np.ndarray:
    """Unconvolved Sérsic profile (Sérsic 1963) on the padded grid, summing to ``flux``."""
    b_n = 2.0 * index - 1.0 / 3.0 + 0.009876 / index  # Prugniel & Simien (1997) approximation
    yy, xx = np.mgrid[0:GRID, 0:GRID].astype(np.float64) - PAD
    dx, dy = xx - x, yy - y
    cos, sin = np.cos(angle), np.sin(angle)
    major = dx * cos + dy * sin
    minor = (-dx * sin + dy * cos) / axis_ratio
    # Half-pixel softening keeps the cusp of n~4 profiles finite at pixel centres.
    radius = np.sqrt(major**2 + minor**2 + 0.25)
    image = np.exp(-b_n * ((radius / r_eff) ** (1.0 / index) - 1.0))
    return image * (flux / image.sum())


_FREQ_Y = np.fft.fftfreq(GRID)[:, None]
_FREQ_X = np.fft.rfftfreq(GRID)[None, :]
_FREQ2 = _FREQ_Y**2 + _FREQ_X**2


def _gaussian_transfer(sigma: float) -> np.ndarray:
    """Fourier transform of a unit Gaussian, built from its separable 1-D factors."""
    factor = -2.0 * np.pi**2 * sigma**2
    return np.exp(factor * _FREQ_Y**2) * np.exp(factor * _FREQ_X**2)


def psf_transfer(fwhm: float, shift_x: float = 0.0, shift_y: float = 0.0) -> np.ndarray:
    """Fourier transform of the (Moffat-like) PSF, with an optional sub-pixel shift."""
    transfer = sum(
        weight * _gaussian_transfer(sigma * fwhm)
        for weight, sigma in zip(PSF_WEIGHTS, PSF_SIGMAS_PER_FWHM, strict=True)
    )
    if shift_x or shift_y:
        phase_y = np.exp(-2j * np.pi * _FREQ_Y * shift_y)
        phase_x = np.exp(-2j * np.pi * _FREQ_X * shift_x)
        transfer = transfer * (phase_y * phase_x)
    return transfer


def convolve(image_fft: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Inverse FFT of (image spectrum x transfer), cropped back to the stamp."""
    full = np.fft.irfft2(image_fft * transfer, s=(GRID, GRID))
    return full[PAD : PAD + STAMP_SIZE, PAD : PAD + STAMP_SIZE]


def pixel_noise_sigma(background_dn, band: BandCalibration):
    """Poisson (sky + sources) plus read noise, per pixel, in DN."""
    return np.sqrt(np.maximum(background_dn, 0.0) / band.gain + READ_NOISE_DN**2)


def noise_equivalent_area(fwhm: float) -> float:
    """PSF noise-equivalent area 4 pi sigma^2 (pixels), King (1983)."""
    return 4.0 * np.pi * (fwhm * FWHM_TO_SIGMA) ** 2


def limiting_flux(sky_sigma: float, fwhm: float) -> float:
    """Flux (DN) at the 5-sigma limit of the difference image (what diffmaglim reports)."""
    return 5.0 * sky_sigma * np.sqrt(noise_equivalent_area(fwhm)) * LIMIT_NOISE_FACTOR


def flux_error(limit_flux: float, error_factor: float = 1.0) -> float:
    """1-sigma uncertainty of the PSF-fit flux (DN) that the alert's sigmapsf reports;
    ``error_factor`` is the exposure's log-normal scatter around ``PSF_NOISE_FACTOR``."""
    return limit_flux / 5.0 * PSF_NOISE_FACTOR * error_factor


def magnitude(flux, zero_point):
    return zero_point - 2.5 * np.log10(np.maximum(np.abs(flux), 1e-30))


def flux_from_magnitude(mag, zero_point):
    return 10.0 ** (-0.4 * (np.asarray(mag) - zero_point))


def resampled_noise(rng, shape) -> np.ndarray:
    """Unit-variance noise as it looks after resampling onto another pixel grid.

    ZTF's reference images are coadds of exposures resampled onto a common grid, and the
    reference is resampled again onto each science image before subtracting (Masci et al. 2019),
    so neighbouring template pixels share noise (lag-1 correlation 0.27 median in the real
    template stamps; science and ZOGY difference stamps are white, -0.01 and -0.04). Bilinear
    interpolation at a random sub-pixel offset reproduces that; the result is rescaled to unit
    variance because the calibrated sigmas above were measured on the stamps themselves.
    """
    white = rng.standard_normal((shape[0] + 1, shape[1] + 1))
    fx, fy = rng.uniform(0.0, 1.0, 2)
    rows = (1 - fy) * white[:-1] + fy * white[1:]
    noise = (1 - fx) * rows[:, :-1] + fx * rows[:, 1:]
    return noise / np.sqrt(((1 - fx) ** 2 + fx**2) * ((1 - fy) ** 2 + fy**2))
