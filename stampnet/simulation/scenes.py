"""Scenes: what is on the sky around a simulated object, and how one exposure images it.

A ``Scene`` holds the static sky (field stars, galaxies, a host or a variable star's mean light) and
the object's variable point source at the stamp centre. ``Scene.render`` makes the three cutouts of
one exposure the way ZTF's pipeline does (Masci et al. 2019): science = sky + scene seen through the
exposure's PSF + Poisson and read noise; template = a deeper, sharper coadd of the static scene;
difference = science - (template PSF-matched to the science image), which leaves the variable flux,
the noise, and whatever the matching got wrong (``shift``, ``seeing_error``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stampnet.simulation import physics
from stampnet.simulation.physics import CENTER, GRID, PAD


@dataclasses.dataclass
class Exposure:
    """Observing conditions of one epoch."""

    fid: int
    seeing: float  # FWHM, pixels
    zero_point: float
    sky: float  # DN
    shift: tuple[float, float] = (0.0, 0.0)  # template registration error, pixels
    seeing_error: float = 0.0  # relative PSF-matching error
    noise_factor: float = 1.0  # science noise over the sky + read noise of ``sky`` (see observe)
    error_factor: float = 1.0  # reported PSF-fit error over its median (physics.flux_error)

    @property
    def scale(self) -> float:
        """DN per unit of magnitude flux."""
        return 10.0 ** (0.4 * self.zero_point)


@dataclasses.dataclass
class Star:
    x: float
    y: float
    flux: dict  # fid -> magnitude flux


@dataclasses.dataclass
class Galaxy:
    x: float
    y: float
    flux: dict
    r_eff: float
    index: float
    axis_ratio: float
    angle: float


@dataclasses.dataclass
class Scene:
    """Static sky plus the variable point source at ``(x, y)`` (stamp pixel coordinates)."""

    x: float
    y: float
    stars: list
    galaxies: list
    template_seeing: dict  # fid -> FWHM of the reference image
    nframes_ref: dict  # fid -> number of exposures in the reference coadd
    rng_seed: int
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def _galaxy_fft(self, fid):
        key = ("galaxies", fid)
        if key not in self._cache:
            image = np.zeros((GRID, GRID))
            for galaxy in self.galaxies:
                image += physics.sersic_image(
                    galaxy.flux[fid],
                    galaxy.x,
                    galaxy.y,
                    galaxy.r_eff,
                    galaxy.index,
                    galaxy.axis_ratio,
                    galaxy.angle,
                )
            self._cache[key] = np.fft.rfft2(image) if self.galaxies else None
        return self._cache[key]

    def _template_noise(self, fid, sky_sigma):
        """The reference image's own noise: fixed for an object and band, like the template."""
        key = ("noise", fid)
        if key not in self._cache:
            rng = np.random.default_rng([self.rng_seed, fid])
            field = physics.resampled_noise(rng, (GRID, GRID)) / np.sqrt(self.nframes_ref[fid])
            self._cache[key] = (field, np.fft.rfft2(field))
        field, spectrum = self._cache[key]
        return field * sky_sigma, spectrum * sky_sigma

    def _star_arrays(self, fid):
        key = ("stars", fid)
        if key not in self._cache:
            self._cache[key] = (
                np.array([star.x for star in self.stars]),
                np.array([star.y for star in self.stars]),
                np.array([star.flux[fid] for star in self.stars]),
            )
        return self._cache[key]

    def _image(self, fid, fwhm, point_flux, shift=(0.0, 0.0), extra_spectrum=None):
        """Static scene plus ``point_flux`` at the candidate, through a PSF of ``fwhm``."""
        image = np.zeros((physics.STAMP_SIZE, physics.STAMP_SIZE))
        spectrum = self._galaxy_fft(fid)
        if spectrum is not None or extra_spectrum is not None:
            total = 0.0 if spectrum is None else spectrum * physics.psf_transfer(fwhm, *shift)
            if extra_spectrum is not None:
                total = total + extra_spectrum
            image += physics.convolve(total, 1.0)
        xs, ys, fluxes = self._star_arrays(fid)
        image += physics.point_sources(
            np.append(xs, self.x) + shift[0],
            np.append(ys, self.y) + shift[1],
            np.append(fluxes, point_flux),
            fwhm,
        )
        return image

    def static_image(self, fid, fwhm, shift=(0.0, 0.0)):
        """The static scene (magnitude-flux units) through a PSF of ``fwhm``."""
        return self._image(fid, fwhm, 0.0, shift)

    def static_flux_at_center(self, fid) -> float:
        """Static flux within ~3 pixels of the candidate (for the source Poisson noise)."""
        total = 0.0
        for source in self.stars + self.galaxies:
            if np.hypot(source.x - self.x, source.y - self.y) < 3.0:
                total += source.flux[fid]
        return total

    def _template(self, fid, reference_flux):
        """Noise-free template (magnitude-flux units): fixed for an object and band."""
        key = ("template", fid)
        if key not in self._cache:
            self._cache[key] = self._image(fid, self.template_seeing[fid], reference_flux)
        return self._cache[key]

    def render(self, exposure: Exposure, variable_flux: float, reference_flux: float, rng):
        """Science, template and difference images (DN, float64) of one exposure."""
        fid, seeing, scale = exposure.fid, exposure.seeing, exposure.scale
        band = physics.CALIBRATION[fid]
        science_model = self._image(fid, seeing, variable_flux) * scale + exposure.sky
        sigma = physics.pixel_noise_sigma(science_model, band) * exposure.noise_factor
        # The science cutout keeps its native pixel grid (ZTF resamples the reference onto the
        # science image, Masci et al. 2019): its noise is white, neighbouring-pixel correlation
        # -0.01 in the real stamps (median), against 0.3 when it was resampled here (1.4.0).
        science_noise = rng.standard_normal(science_model.shape) * sigma
        science = science_model + science_noise

        sky_sigma = float(physics.pixel_noise_sigma(exposure.sky, band))
        noise_field, noise_spectrum = self._template_noise(fid, sky_sigma)
        crop = slice(PAD, PAD + physics.STAMP_SIZE)
        template = self._template(fid, reference_flux) * scale
        template += exposure.sky + noise_field[crop, crop]

        # PSF matching: the template convolved with the kernel that takes its PSF to the
        # science PSF; the matched image carries the template noise, smoothed by that kernel.
        t_seeing = self.template_seeing[fid]
        matched_seeing = seeing * (1.0 + exposure.seeing_error)
        kernel_sigma = np.sqrt(max(matched_seeing**2 - t_seeing**2, 0.0)) * physics.FWHM_TO_SIGMA
        kernel = physics._gaussian_transfer(kernel_sigma)
        galaxies = self._galaxy_fft(fid)
        spectrum = noise_spectrum * kernel
        if galaxies is not None:
            transfer = physics.psf_transfer(matched_seeing, *exposure.shift)
            spectrum = spectrum + galaxies * transfer * scale
        matched = physics.convolve(spectrum, 1.0)
        xs, ys, fluxes = self._star_arrays(fid)
        matched += physics.point_sources(
            np.append(xs, self.x) + exposure.shift[0],
            np.append(ys, self.y) + exposure.shift[1],
            np.append(fluxes, reference_flux) * scale,
            matched_seeing,
        )
        # ZTF's ZOGY difference images (Zackay et al. 2016) are whitened and rescaled, not a
        # plain subtraction: their noise is ~0.89x the science noise (1.4826 MAD medians of the
        # real stamps 5.57 vs 6.28 DN), so the science noise enters scaled.
        difference = science - exposure.sky - matched
        difference -= (1.0 - physics.DIFFERENCE_NOISE_SCALE) * science_noise
        return science, template, difference


def psf_flux(difference: np.ndarray, x: float, y: float, fwhm: float) -> float:
    """Linear PSF-fit flux at a fixed position (what the pipeline's magpsf measures)."""
    psf = physics.point_source(x, y, fwhm, 1.0)
    return float(np.sum(difference * psf) / np.sum(psf * psf))


#: Field sources per 63x63 stamp (1" pixels). Stars to 22 mag: ~3 far from the Galactic plane,
#: rising towards it (disk counts fall off with latitude on a ~8 degree scale); galaxies to
#: 22.5 mag: ~4 anywhere (number counts dN/dm ~ 10^(0.4 m)). Checked on the real templates:
#: sources above 10 sigma outside the candidate, median per alert AGN 2, SN 3, VS 7, asteroid 1,
#: bogus 2 (1.4.0 simulated: 0.5-1 in every class, ~0.8 stars and galaxies per stamp).
#: Towards the plane, per labelled real VS alert by |b| (0-5, 5-10, 10-20, 20-30, > 30 degrees;
#: 114 objects over all longitudes): 15.3, 16.3, 6.8, 4.6 and 2.5 sources; 1.6.11 (30 stars per
#: stamp in the plane) 11.5, 8.5, 6.1, 3.2 and 2.7; 1.6.12 (45, and the VS as close to the plane
#: as real ones) 16.1, 10.8, 6.9, 4.1 and 2.5.
STARS_PER_STAMP, PLANE_STARS_PER_STAMP, PLANE_SCALE_DEG = 3.0, 45.0, 8.0
GALAXIES_PER_STAMP = 4.0
#: Sources are drawn over the stamp plus a margin, so that light from outside spills in.
_FIELD_LOW, _FIELD_HIGH = -PAD, physics.STAMP_SIZE + PAD
_FIELD_AREA = ((_FIELD_HIGH - _FIELD_LOW) / physics.STAMP_SIZE) ** 2
#: Counts in arcminute cells are not Poisson: galaxies cluster and star counts change with
#: Galactic longitude too, so each field's density is the mean times a Gamma(k, 1/k) factor.
#: Real asteroids (random positions) at |b| > 30 degrees: PS1 sources within 30" 0, 1, 2, 3+ in
#: 4.7, 11.7, 15.2 and 68.4 % of 256 alerts (12 with none, of 4 nights and 7 fields; their
#: nearest reference sources are 22.7-23.3 mag, below PS1's depth). A Poisson field (1.6.10)
#: gave 0.8, 3.6, 9.7 and 85.9 %; k = 4 gives 4.4, 11.3, 11.7 and 72.6 % (400 objects), and the
#: nearest PS1 source's median distance stays at 12" (real 11.9").
#: A field picked because it holds a star or galaxy (the VS, the SN's host, the AGN) is denser
#: than a random one (size-biased): its factor is Gamma(k + 1, 1/k), mean 1.25. Real SN: 86 of
#: 86 alerts list three PS1 sources; simulated 96 %, 85 % at the asteroids' densities.
FIELD_DENSITY_SHAPE = 4.0


def field_sources(rng, galactic_latitude: float, difficulty: float, at_random: bool = False):
    """Unrelated stars and galaxies in the stamp; star counts rise towards the Galactic plane.

    ``at_random``: the candidate lies anywhere on the sky (an asteroid), not on a catalogued
    source, so its field is no denser than the average one.
    """
    shape = FIELD_DENSITY_SHAPE if at_random else FIELD_DENSITY_SHAPE + 1.0
    clustering = rng.gamma(shape, 1.0 / FIELD_DENSITY_SHAPE)
    density = clustering * (
        STARS_PER_STAMP + PLANE_STARS_PER_STAMP * np.exp(-abs(galactic_latitude) / PLANE_SCALE_DEG)
    )
    stars, galaxies = [], []
    for _ in range(rng.poisson(density * _FIELD_AREA)):
        # Differential counts dN/dm ~ 10^(0.2 m) (star counts flatten at faint magnitudes),
        # truncated at 13 and 22 mag.
        mag = max(22.0 + np.log10(rng.uniform(10 ** (-0.2 * 9.0), 1.0)) / 0.2, 13.0)
        colour = rng.normal(0.6, 0.3)
        stars.append(
            Star(
                rng.uniform(_FIELD_LOW, _FIELD_HIGH),
                rng.uniform(_FIELD_LOW, _FIELD_HIGH),
                {1: 10 ** (-0.4 * (mag + colour)), 2: 10 ** (-0.4 * mag)},
            )
        )
    # Galaxies whose light matters lie within half the margin (their profiles are rendered on
    # the padded grid, which must hold them).
    low, high = _FIELD_LOW / 2, physics.STAMP_SIZE - _FIELD_LOW / 2
    area = ((high - low) / physics.STAMP_SIZE) ** 2
    for _ in range(rng.poisson(clustering * GALAXIES_PER_STAMP * area)):
        mag = 22.5 + np.log10(rng.uniform(10 ** (-0.4 * 5.0), 1.0)) / 0.4  # 17.5 - 22.5 mag
        galaxies.append(
            random_galaxy(rng, rng.uniform(low, high), rng.uniform(low, high), mag, 0.5, 3.0)
        )
    # Keep unrelated sources off the candidate itself (the alert would be about them).
    keep = [s for s in stars if np.hypot(s.x - CENTER, s.y - CENTER) > 4.0]
    return keep, [g for g in galaxies if np.hypot(g.x - CENTER, g.y - CENTER) > 5.0]


def random_galaxy(rng, x, y, mag, r_min, r_max) -> Galaxy:
    colour = rng.normal(0.7, 0.2)  # g - r of a typical galaxy
    return Galaxy(
        x,
        y,
        {1: 10 ** (-0.4 * (mag + colour)), 2: 10 ** (-0.4 * mag)},
        r_eff=rng.uniform(r_min, r_max),
        index=rng.uniform(0.7, 4.0),
        axis_ratio=rng.uniform(0.3, 1.0),
        angle=rng.uniform(0, np.pi),
    )
