"""Observing one object through the survey: epochs, detections, cutouts and candidate fields.

Only epochs whose PSF-fit flux in the difference image is above 5 sigma (either sign) make alerts,
as in ZTF; the others become upper limits in later alerts' ``prv_candidates``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stampnet.simulation import artefacts, classes, lightcurves, physics
from stampnet.simulation.physics import CENTER, STAMP_SIZE
from stampnet.simulation.scenes import Exposure, psf_flux

DETECTION_SNR = 5.0


@dataclasses.dataclass
class Epoch:
    jd: float
    exposure: Exposure
    diffmaglim: float
    reference_flux: float = 0.0
    detected: bool = False
    candidate: dict | None = None
    stamps: tuple | None = None
    #: PSF flux (DN) in the difference image at the object's position and its 1-sigma error:
    #: the PSF fit of the rendered stamp where one was rendered (``measured``), else the true
    #: flux, to which the forced photometry adds its noise (``stampnet.simulation.history``).
    difference_flux: float = 0.0
    flux_error: float = float("nan")
    measured: bool = False


#: Bad subtractions of bright static sources: the labelled real bogus within 2 pixels of a
#: catalogued source (64, mostly stars of magnr ~14.8) show a PSF-shaped, one-signed residual
#: (normalised central 5x5 mean 0.37, like a point source; opposite lobe at the noise, median
#: 2.6-3.0 sigma) holding 7-31% of the source's flux (magpsf - magnr quartiles 1.3-2.8 for the
#: negative ones), i.e. the source's flux in the science exposure is off (non-linearity near
#: saturation, brighter-fatter), which the global zero point and PSF-matching kernel do not
#: follow. 1.6.2 made dipoles by misregistering the template by 0.1-0.6 px: opposite lobe median
#: 27 sigma, peak S/N 61 (real 17). Fraction log-uniform over this range:
FLUX_MISMATCH_RANGE = (0.04, 0.3)


def _exposure(rng, fid, difficulty, label) -> Exposure:
    band = physics.CALIBRATION[fid]
    seeing = band.seeing_median * (0.9 + 0.25 * difficulty)
    # Real stamps' PSF FWHM (flux / peak) is >= 1.7 px in 95% of alerts: seeing floor 1.6.
    seeing = float(np.clip(seeing * np.exp(rng.normal(0, band.seeing_log_sigma)), 1.6, 7.0))
    shift_scale = 0.03 + 0.07 * difficulty
    return Exposure(
        fid=fid,
        seeing=seeing,
        zero_point=float(rng.normal(band.zero_point, band.zero_point_sigma)),
        sky=float(band.sky_median * np.exp(rng.normal(0, band.sky_log_sigma))),
        shift=(float(rng.normal(0, shift_scale)), float(rng.normal(0, shift_scale))),
        seeing_error=float(rng.normal(0, 0.01 + 0.03 * difficulty)),
        noise_factor=float(
            physics.NOISE_EXCESS_MEDIAN * np.exp(rng.normal(0, physics.NOISE_EXCESS_LOG_SIGMA))
        ),
        error_factor=float(np.exp(rng.normal(0, physics.PSF_NOISE_LOG_SIGMA))),
    )


def _limit(exposure: Exposure) -> float:
    sky_sigma = float(physics.pixel_noise_sigma(exposure.sky, physics.CALIBRATION[exposure.fid]))
    sky_sigma *= exposure.noise_factor
    return physics.limiting_flux(sky_sigma * physics.DIFFERENCE_NOISE_SCALE, exposure.seeing)


def flux_error(exposure: Exposure) -> float:
    """The PSF-fit flux error (DN) of a source-free position in ``exposure``."""
    return physics.flux_error(_limit(exposure), exposure.error_factor)


def observe(model: classes.ObjectModel, rng, difficulty: float, start_jd: float, max_alerts: int):
    """All epochs of the object; the detected ones carry stamps and candidate fields."""
    if model.label in ("asteroid", "bogus") and model.duration <= 1.0:
        times = np.array([start_jd + rng.uniform(0.65, 0.95)])
        fids = np.array([int(rng.integers(1, 3))])
    else:
        times, fids = lightcurves.cadence(rng, start_jd, model.duration)
    flux, reference = model.lightcurve(rng, times - start_jd, fids)
    epochs = []
    for jd, fid, var_flux in zip(times, fids, flux, strict=True):
        if sum(e.detected for e in epochs) >= max_alerts:
            break
        exposure = _exposure(rng, int(fid), difficulty, model.label)
        # A bad subtraction of a bright static source ("dipole", see _add_artefact) keeps the
        # exposure's own registration and kernel errors (1.6.2 shifted the template by 0.1-0.6
        # px and mis-sized the kernel: true dipoles, far stronger than the real residuals).
        if model.label == "bogus" and model.artefact == "bright_star":
            exposure.seeing_error = float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.15))
        limit = _limit(exposure)
        epoch = Epoch(
            float(jd),
            exposure,
            float(physics.magnitude(limit, exposure.zero_point)),
            float(reference[int(fid)]),
        )
        epochs.append(epoch)
        delta = (var_flux - reference[int(fid)]) * exposure.scale
        error = flux_error(exposure)
        epoch.difference_flux, epoch.flux_error = float(delta), float(error)
        # Cheap photometric pre-check: render only epochs that can reach 5 sigma.
        if model.label != "bogus" and abs(delta) < 4.5 * error:
            continue
        science, template, difference = model.scene.render(
            exposure, var_flux, reference[int(fid)], rng
        )
        nan_mask = None
        if model.label == "bogus":
            science, difference, nan_mask = _add_artefact(model, exposure, rng, science, difference)
        measured = psf_flux(difference, model.scene.x, model.scene.y, exposure.seeing)
        static = model.scene.static_flux_at_center(exposure.fid) + var_flux
        error = np.sqrt(error**2 + abs(static) * exposure.scale / physics.CALIBRATION[fid].gain)
        # Calibration (zero-point) uncertainty adds a floor to the relative flux error.
        relative_floor = physics.SIGMAPSF_FLOOR / 1.0857
        snr = measured / np.sqrt(error**2 + (relative_floor * measured) ** 2)
        epoch.difference_flux, epoch.flux_error = float(measured), float(abs(measured / snr))
        epoch.measured = True
        if abs(snr) < DETECTION_SNR:
            continue
        epoch.detected = True
        epoch.stamps = (science, template, difference, nan_mask)
        epoch.candidate = {
            "magpsf": float(physics.magnitude(measured, exposure.zero_point)),
            "sigmapsf": float(1.0857 / abs(snr)),
            "isdiffpos": "t" if measured > 0 else "f",
            "snr": float(abs(snr)),
        }
    return epochs


def _add_artefact(model, exposure, rng, science, difference):
    """Adds the bogus artefact, scaled to a target S/N in the difference image."""
    kind, nan_mask = model.artefact, None
    error = flux_error(exposure)
    # Real bogus alerts (drb < 0.1) are bright (median magpsf 17.2, simulated 1.2.0: 19.1) and
    # mostly negative (isdiffpos 'f'): subtraction residuals of bright sources, not faint blips.
    target = DETECTION_SNR * np.exp(rng.exponential(1.8))
    # A badly subtracted static source leaves mostly a negative residual (real bogus on a
    # catalogued source: 83% isdiffpos 'f'; elsewhere 40%).
    negative = 0.8 if kind in ("dipole", "bright_star") else 0.4
    sign = rng.choice([-1.0, 1.0], p=[negative, 1.0 - negative])
    if kind in artefacts.SATELLITES:  # light added to the science exposure: always positive
        unit = artefacts.satellite_trail(
            rng, model.scene.x, model.scene.y, exposure.seeing, kind == "satellite_glints"
        )
        response = psf_flux(unit, model.scene.x, model.scene.y, exposure.seeing)
        trail = unit * (target * error / response)
        science, difference = science + trail, difference + trail
    elif kind in ("cosmic_ray", "hot_pixel"):
        unit = artefacts.cosmic_ray(rng) if kind == "cosmic_ray" else artefacts.hot_pixel(rng)
        response = psf_flux(unit, model.scene.x, model.scene.y, exposure.seeing)
        base = psf_flux(difference, model.scene.x, model.scene.y, exposure.seeing)
        amplitude = max((target * error - base) / max(response, 1e-6), 0.0)
        science = science + unit * amplitude
        difference = difference + unit * amplitude
    elif kind == "edge":
        nan_mask = artefacts.edge_mask(rng)
        unit = artefacts.edge_ramp(rng, nan_mask) * sign
        response = psf_flux(unit, model.scene.x, model.scene.y, exposure.seeing)
        amplitude = target * error / max(abs(response), 1e-6)
        difference = difference + unit * amplitude
    elif kind == "dipole":
        source = (model.scene.galaxies if model.host_kind == "galaxy" else model.scene.stars)[-1]
        fraction = np.exp(rng.uniform(*np.log(FLUX_MISMATCH_RANGE)))
        flux = sign * fraction * source.flux[exposure.fid] * exposure.scale
        unit = physics.point_source(model.scene.x, model.scene.y, exposure.seeing, flux)
        science = science + unit
        difference = difference + unit
    elif kind == "bright_star":
        star = model.scene.stars[-1]
        peak = physics.point_source(star.x, star.y, exposure.seeing, star.flux[exposure.fid])
        saturated = peak * exposure.scale > 2.0e4  # ~ ZTF full well of the science frames
        nan_mask = saturated | artefacts.saturation_mask(star.x, star.y, 1.5)
    base = psf_flux(difference, model.scene.x, model.scene.y, exposure.seeing)
    if kind in ("dipole", "bright_star") and abs(base) < DETECTION_SNR * error:
        # The residual must be what triggered the alert: make it so with a badly subtracted
        # core, PSF-shaped and one-signed as in the real ones (1.6.2 added a +-0.6 px dipole).
        residual = physics.point_source(model.scene.x, model.scene.y, exposure.seeing, 1.0)
        response = psf_flux(residual, model.scene.x, model.scene.y, exposure.seeing)
        difference = difference + residual * (sign * target * error - base) / response
    return science, difference, nan_mask


def finish_stamps(rng, stamps, label: str, artefact: str):
    """Float32 stamps with NaN regions and edge truncation at the real rates; (x, y) on the CCD."""
    science, template, difference, nan_mask = stamps
    images = [np.array(image, dtype=np.float32) for image in (science, template, difference)]
    if nan_mask is None and rng.random() < physics.NAN_RATE:
        if rng.random() < 0.5:
            x, y = rng.uniform(0, STAMP_SIZE, 2)
            if np.hypot(x - CENTER, y - CENTER) > 6:
                nan_mask = artefacts.saturation_mask(x, y, rng.uniform(1.5, 7.0))
        else:
            nan_mask = artefacts.edge_mask(rng)
    if nan_mask is not None:
        images[0][nan_mask] = np.nan
        images[2][nan_mask] = np.nan
        # The deeper template saturates on a smaller area; masked strips are shared.
        template_mask = nan_mask if nan_mask.sum() > 60 else nan_mask & (rng.random() < 0.5)
        images[1][template_mask] = np.nan
    xpos = rng.uniform(CENTER + 1, physics.CCD_WIDTH - CENTER - 1)
    ypos = rng.uniform(CENTER + 1, physics.CCD_HEIGHT - CENTER - 1)
    truncate = rng.random() < physics.TRUNCATION_RATE or (
        artefact == "edge" and nan_mask is not None and rng.random() < 0.2
    )
    if truncate:
        side = int(rng.integers(4))
        distance = rng.uniform(1.0, CENTER - 1.0)  # pixels from candidate to the CCD edge
        missing = CENTER - int(np.floor(distance - 1.0)) if distance >= 1 else CENTER
        missing = int(np.clip(missing, 1, CENTER))
        if side == 0:  # bottom rows (small ypos)
            ypos, images = distance, [image[missing:] for image in images]
        elif side == 1:
            ypos = physics.CCD_HEIGHT - distance
            images = [image[: STAMP_SIZE - missing] for image in images]
        elif side == 2:
            xpos, images = distance, [image[:, missing:] for image in images]
        else:
            xpos = physics.CCD_WIDTH - distance
            images = [image[:, : STAMP_SIZE - missing] for image in images]
    return images, float(xpos), float(ypos)
