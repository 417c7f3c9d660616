"""The five ALeRCE classes as physical set-ups: where they are, what hosts them, how they vary.

``make_object(label, rng, difficulty)`` returns an ``ObjectModel``: sky position, the static scene,
and the light curve. ``difficulty`` in [0, 1] makes the sample harder without mislabelling anything:
fainter sources (closer to the limit), worse seeing, larger subtraction errors, and artefacts and
metadata that overlap more with real sources.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stampnet.simulation import lightcurves, physics
from stampnet.simulation.physics import CENTER
from stampnet.simulation.scenes import Galaxy, Scene, Star, field_sources, random_galaxy

CLASSES = ("AGN", "SN", "VS", "asteroid", "bogus")

# ICRS -> frame rotations as constants, so that simulator workers need not import astropy
# (stampnet.features derives the same matrices with astropy; tests check they agree):
# galactic from the Hipparcos definition (ESA 1997), mean ecliptic J2000 from the IAU 1976
# obliquity 23.4392911 deg (frame bias, ~20 mas, is far below what a position here needs).
GALACTIC = np.array(
    [
        [-0.0548755604, -0.8734370902, -0.4838350155],
        [0.4941094279, -0.4448296300, 0.7469822445],
        [-0.8676661490, -0.1980763734, 0.4559837762],
    ]
)
_OBLIQUITY = np.radians(23.4392911)
ECLIPTIC = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.0, np.cos(_OBLIQUITY), np.sin(_OBLIQUITY)],
        [0.0, -np.sin(_OBLIQUITY), np.cos(_OBLIQUITY)],
    ]
)


@dataclasses.dataclass
class ObjectModel:
    label: str
    ra: float
    dec: float
    gal_lat: float
    scene: Scene
    duration: float  # days of survey coverage with alerts
    lightcurve: object  # (rng, times, fids) -> (flux, reference flux per band)
    # Detections before the simulated window: bogus's count is used as drawn here; VS and
    # AGN only say that they have a history, whose counts simulation.survey draws (1.6.7).
    prior_detections: int
    host_kind: str  # "star", "galaxy", "nucleus", "none": sets sgscore/chinr/sharpnr
    artefact: str = ""  # bogus kind


def _from_frame(matrix, lon_deg, lat_deg):
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    unit = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    x, y, z = matrix.T @ unit  # the frames are rotations of ICRS: the inverse is the transpose
    return float(np.degrees(np.arctan2(y, x)) % 360.0), float(np.degrees(np.arcsin(z)))


#: Galactic latitude spread of the variable stars that lie in the plane (60 %; the others are
#: spread over the sky): half in the thin disk, half wider. Labelled real VS objects: 35 % within
#: 5 degrees of the plane (40 of 114), 6, 19, 18 and 22 % at 5-10, 10-20, 20-30 and beyond 30;
#: 1.6.11 (one spread of 12 degrees) 21, 13, 24, 18 and 25 % of its VS alerts.
VS_PLANE_SPREAD_DEG = (15.0, 3.0)


def sky_position(rng, label: str) -> tuple[float, float, float]:
    """(ra, dec, galactic latitude) of an object of ``label`` in the ZTF sky (dec > -30)."""
    ecliptic, galactic = ECLIPTIC, GALACTIC
    while True:
        if label == "asteroid":  # main-belt inclinations: |beta| mostly below ~10 degrees
            ra, dec = _from_frame(ecliptic, rng.uniform(0, 360), rng.normal(0.0, 6.0))
        elif label == "VS" and rng.random() < 0.6:  # stars concentrate to the Galactic plane
            spread = VS_PLANE_SPREAD_DEG[int(rng.random() < 0.5)]
            ra, dec = _from_frame(galactic, rng.uniform(0, 360), rng.normal(0.0, spread))
        else:
            ra = rng.uniform(0, 360)
            dec = float(np.degrees(np.arcsin(rng.uniform(-0.5, 1.0))))
        lat = _latitude(galactic, ra, dec)
        extragalactic = label in ("SN", "AGN")
        if dec > -30.0 and not (extragalactic and abs(lat) < 12.0 and rng.random() < 0.9):
            return ra, dec, lat


def _latitude(matrix, ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    unit = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    return float(np.degrees(np.arcsin(np.clip((matrix @ unit)[2], -1, 1))))


def counts_magnitude(rng, bright: float, faint: float, slope: float = 0.3) -> float:
    """A magnitude with number counts dN/dm ~ 10^(slope m) between ``bright`` and ``faint``:
    faint sources outnumber bright ones, so real alerts pile up near the detection limit."""
    low = 10.0 ** (-slope * (faint - bright))
    return float(faint + np.log10(rng.uniform(low, 1.0)) / slope)


def _mag_flux(mag, colour):
    return {1: 10 ** (-0.4 * (mag + colour)), 2: 10 ** (-0.4 * mag)}


#: Labelled real SNe are spectroscopically classified ones, i.e. bright: alert magpsf median 19.0
#: (10-90%: 18.5-20.0) over the 86 labelled real SN alerts; 1.6.2 drew peaks over 16-20 mag with
#: counts rising to the faint end, which gave alerts at 19.6 (18.2-20.2), fainter and at lower S/N
#: (difference peak S/N median 8.8, real 12.3). Peaks to 18.9 mag match the real alerts' median
#: (19.0; here 19.35) and come closer to their S/N (science peak 12.2, here 10.1, real 14.6), but
#: the feature model trained on them fell in accuracy on the real alerts in two seeds of two (round
#: 15, benchmarks/results/simulator_realism): not kept.
SN_PEAK_FAINT = 19.4
#: SN hosts at 1"/pixel: the ZTF SN hosts (z ~ 0.02-0.1) are mostly compact, and the SN follows
#: its host's light (the projected light of an exponential disk: R/h ~ Gamma(2), h = r_eff/1.678).
#: Real: 42% of the labelled SN alerts lie within 1 pixel of a reference-catalogue source
#: (distnr median 1.4 px), their science stamps peaked at the centre (min-max normalised central
#: 5x5 mean 0.34); 1.6.2 (r_eff 1.2-5 px, offsets 0.3-2 r_eff) gave 7%, 2.6 px and 0.49; 1.6.3-
#: 1.6.12 29% and 1.7 px. Hosts of 0.5-3 px match (44%, 1.1 px) but make SNe look more like AGN
#: nuclei, and the feature model fell in accuracy as with brighter peaks (round 15): not kept.
SN_HOST_R_EFF = (0.8, 4.0)


def make_object(label: str, rng, difficulty: float) -> ObjectModel:
    if label not in CLASSES:
        raise ValueError(f"label must be one of {CLASSES}, received {label!r}")
    ra, dec, lat = sky_position(rng, label)
    stars, galaxies = field_sources(rng, lat, difficulty, at_random=label == "asteroid")
    x = CENTER + rng.uniform(-0.5, 0.5)
    y = CENTER + rng.uniform(-0.5, 0.5)
    faint = 1.2 * difficulty  # magnitudes closer to the detection limit
    kind, artefact = "none", ""
    prior_det = 0
    # 1.6.6 drew ncovhist here; the draw stays so that the stamps drawn after it stay as they
    # were (stampnet.simulation.survey draws the history counts from their own stream).
    rng.integers(20, 1500)
    if label == "SN":
        peak = counts_magnitude(rng, 16.0, SN_PEAK_FAINT) + 0.5 * faint
        t_peak = rng.uniform(5.0, 30.0)
        if rng.random() < 0.92:  # a few SNe are hostless (host below the template's depth)
            radius = float(np.exp(rng.uniform(*np.log(SN_HOST_R_EFF))))
            offset = rng.gamma(2.0, radius / 1.678)  # the host's light: R/h ~ Gamma(2)
            angle = rng.uniform(0, 2 * np.pi)
            hx, hy = x - offset * np.cos(angle), y - offset * np.sin(angle)
            galaxies.append(random_galaxy(rng, hx, hy, rng.uniform(16.5, 20.5), radius, radius))
            kind = "galaxy"

        def curve(rng, times, fids, peak=peak, t_peak=t_peak):
            return lightcurves.supernova(rng, times, fids, peak, t_peak)

        duration = rng.uniform(50.0, 90.0)
    elif label == "AGN":
        mean = counts_magnitude(rng, 15.5, 19.8) + 0.4 * faint
        # Real AGN templates show the host around the nucleus (min-max normalised template mean
        # 0.045, simulated 1.2.0: 0.024, as point-like as a variable star's): the host is drawn
        # relative to the nucleus, mostly as bright or brighter, not independently of it.
        host_mag = float(np.clip(mean + rng.normal(-0.4, 0.8), 16.0, 21.0))
        host = random_galaxy(rng, x, y, host_mag, 1.5, 5.0)
        galaxies.append(host)
        kind = "nucleus"
        prior_det = int(rng.integers(5, 300))

        def curve(rng, times, fids, mean=mean):
            return lightcurves.damped_random_walk(rng, times, fids, mean)

        duration = rng.uniform(60.0, 150.0)
    elif label == "VS":
        # Real variable-star alerts are bright stars: the labelled real sample's magnr (the
        # star in the reference image) has median 16.0 (10-90%: 13.4-18.5) and magpsf 17.5;
        # 1.5.2 simulated magnr 17.1 (14.5-18.6) and magpsf 18.6 from means drawn over 13-19.8.
        mean = counts_magnitude(rng, 12.0, 19.0, 0.1) + 0.4 * faint
        kind = "star"
        prior_det = int(rng.integers(5, 500))

        def curve(rng, times, fids, mean=mean):
            return lightcurves.periodic(rng, times, fids, mean)

        duration = rng.uniform(30.0, 80.0)
    elif label == "asteroid":
        mag = counts_magnitude(rng, 15.5, 20.6) + 0.4 * faint

        def curve(rng, times, fids, mag=mag):
            return np.full(len(times), 10 ** (-0.4 * mag)), {1: 0.0, 2: 0.0}

        duration = 1.0
        prior_det = 0
    else:
        from stampnet.simulation.artefacts import KIND_WEIGHTS, KINDS, SATELLITES

        artefact = str(rng.choice(KINDS, p=KIND_WEIGHTS))
        if artefact == "dipole":  # a static source badly subtracted: mostly a bright star
            mag = rng.uniform(12.5, 17.5)
            if rng.random() < 0.9:
                stars.append(Star(x, y, _mag_flux(mag, rng.normal(0.6, 0.3))))
                kind = "star"
            else:
                galaxies.append(random_galaxy(rng, x, y, mag, 1.0, 3.0))
                kind = "galaxy"
        elif artefact == "bright_star":
            angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(4.0, 14.0)
            stars.append(
                Star(
                    x + radius * np.cos(angle),
                    y + radius * np.sin(angle),
                    _mag_flux(rng.uniform(10.0, 12.5), 0.7),
                )
            )
            kind = "star"
        # A satellite passes once; the residuals of a static source recur.
        passing = artefact in SATELLITES
        prior_det = 0 if passing else int(rng.integers(0, 3))

        def curve(rng, times, fids):
            return np.zeros(len(times)), {1: 0.0, 2: 0.0}

        duration = 1.0 if passing or rng.random() < 0.8 else rng.uniform(5.0, 20.0)
    scene = Scene(
        x=x,
        y=y,
        stars=stars,
        galaxies=galaxies,
        template_seeing={
            fid: physics.CALIBRATION[fid].seeing_median
            * physics.TEMPLATE_SEEING_FACTOR
            * float(np.exp(rng.normal(0.0, 0.08)))
            for fid in (1, 2)
        },
        nframes_ref={fid: int(rng.integers(*physics.NFRAMES_REF_RANGE)) for fid in (1, 2)},
        rng_seed=int(rng.integers(2**62)),
    )
    return ObjectModel(label, ra, dec, lat, scene, duration, curve, prior_det, kind, artefact)


def nearest_sources(scene: Scene, fid: int):
    """Static sources sorted by distance (pixels) from the candidate: (distance, mag, type)."""
    found = []
    for source in scene.stars + scene.galaxies:
        flux = source.flux[fid]
        if flux <= 0:
            continue
        distance = float(np.hypot(source.x - scene.x, source.y - scene.y))
        found.append((distance, float(-2.5 * np.log10(flux)), isinstance(source, Galaxy)))
    return sorted(found)
