"""Bogus detections: the artefacts that make most of ZTF's raw candidates (Duev et al. 2019).

Each artefact returns its added image in the science frame and in the difference (DN, unit
amplitude where the caller scales it to a target S/N), plus the stamp's NaN mask where the
artefact masks pixels. Kinds: cosmic ray, hot pixel / bad column, dipole (a badly subtracted
static source; since 1.6.4 a flux mismatch at the source, see observe), bright-star residual
(saturated core, PSF-mismatch rings), edge (masked region and a ramp left by a bad background
fit near it), satellite glints and streaks (a satellite crossing the field during the exposure).
"""

from __future__ import annotations

import numpy as np

from stampnet.simulation import physics
from stampnet.simulation.physics import CENTER, STAMP_SIZE

KINDS = (
    "cosmic_ray", "hot_pixel", "dipole", "bright_star", "edge", "satellite_glints",
    "satellite_streak",
)  # fmt: skip
#: The labelled real bogus alerts are mostly bad subtractions of a catalogued static source: 56%
#: lie within 2 pixels of a reference-image source (distnr), almost all stars (sgscore1 median
#: 0.99, magnr median 14.7), 83% of those with a negative difference. Simulated 1.5.2 (dipoles
#: 30% of the mix): 14%. Detector artefacts (cosmic rays, hot pixels) away from sources are rarer.
#: Satellites: about 10 of the 125 (8%) show a satellite's trail through the candidate, 9 a row of
#: equally spaced PSF-like glints (5-21 px apart), 1 a streak; each glint can raise an alert (6
#: are glints of one satellite). Simulators to 1.6.9 had none, and every 1.6.8-1.6.9 transfer
#: run called them asteroids: a source in the science image that the template lacks.
KIND_WEIGHTS = (0.09, 0.06, 0.55, 0.12, 0.10, 0.06, 0.02)
#: Spacing (px) of the glints of a tumbling satellite along its trail.
GLINT_SPACING = (4.0, 22.0)
#: Kinds that are light from the sky in this exposure only: positive, never seen there again.
SATELLITES = ("satellite_glints", "satellite_streak")


def cosmic_ray(rng) -> np.ndarray:
    """A sharp track of a few pixels, no PSF: it hit the detector, not the sky."""
    image = np.zeros((STAMP_SIZE, STAMP_SIZE))
    length = rng.integers(1, 6)
    angle = rng.uniform(0, np.pi)
    for step in range(length):
        x = int(round(CENTER + (step - length / 2) * np.cos(angle)))
        y = int(round(CENTER + (step - length / 2) * np.sin(angle)))
        image[np.clip(y, 0, 62), np.clip(x, 0, 62)] += rng.uniform(0.5, 1.0)
    if rng.random() < 0.5:  # charge spills into a neighbour
        image[CENTER, CENTER + rng.choice([-1, 1])] += rng.uniform(0.1, 0.4)
    return image


def satellite_trail(rng, x: float, y: float, fwhm: float, glints: bool) -> np.ndarray:
    """A satellite's trail through (x, y), across the stamp and beyond: a row of PSF-like glints
    (a tumbling satellite flashing at a steady period; one of them at the candidate) or a
    streak. It crossed the field during this exposure only, so the caller adds it to the science
    image and the difference, never to the template."""
    angle = rng.uniform(0.0, np.pi)
    spacing = np.exp(rng.uniform(*np.log(GLINT_SPACING))) if glints else 0.5
    steps = np.arange(-int(50 / spacing), int(50 / spacing) + 1) * spacing
    xs, ys = x + steps * np.cos(angle), y + steps * np.sin(angle)
    fluxes = np.exp(rng.normal(0.0, 0.2, steps.size)) if glints else np.full(steps.size, 0.1)
    # Beyond the stamp by a PSF's reach, light no longer falls on it.
    inside = (np.minimum(xs, ys) > -10) & (np.maximum(xs, ys) < STAMP_SIZE + 10)
    return physics.point_sources(xs[inside], ys[inside], fluxes[inside], fwhm)


def hot_pixel(rng) -> np.ndarray:
    """A hot pixel, or a bad column running through the candidate."""
    image = np.zeros((STAMP_SIZE, STAMP_SIZE))
    if rng.random() < 0.5:
        image[CENTER, CENTER] = 1.0
        if rng.random() < 0.3:
            image[CENTER + 1, CENTER] = rng.uniform(0.2, 0.8)
    else:
        start = rng.integers(0, CENTER - 2)
        image[start:, CENTER] = rng.uniform(0.15, 0.3)
        image[CENTER, CENTER] = 1.0
    return image


def saturation_mask(x: float, y: float, radius: float, shape=(STAMP_SIZE, STAMP_SIZE)):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xx - x) ** 2 + (yy - y) ** 2 <= radius**2


def edge_mask(rng) -> np.ndarray:
    """A masked strip along one side of the stamp (off-chip or flagged pixels)."""
    mask = np.zeros((STAMP_SIZE, STAMP_SIZE), dtype=bool)
    width = int(rng.integers(3, 25))
    side = rng.integers(4)
    if side == 0:
        mask[:width] = True
    elif side == 1:
        mask[-width:] = True
    elif side == 2:
        mask[:, :width] = True
    else:
        mask[:, -width:] = True
    return mask


def edge_ramp(rng, mask: np.ndarray) -> np.ndarray:
    """A residual that decays away from a masked strip, peaking near the candidate."""
    yy, xx = np.mgrid[0:STAMP_SIZE, 0:STAMP_SIZE]
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return np.zeros(mask.shape)
    # Distance to the strip along the axis the strip is normal to.
    if rows.min() == 0 and rows.max() == STAMP_SIZE - 1:
        distance = np.minimum(np.abs(xx - cols.min()), np.abs(xx - cols.max()))
    else:
        distance = np.minimum(np.abs(yy - rows.min()), np.abs(yy - rows.max()))
    ramp = np.exp(-distance / rng.uniform(2.0, 6.0))
    blob = physics.point_source(CENTER, CENTER, rng.uniform(2.0, 4.0), 1.0)
    return ramp * 0.2 + blob / blob.max()
