"""Candidate fields consistent with the simulated scene (catalogue matches, shape, scores).

Catalogue cross-matches are read off the scene: PS1 (``sgscore``/``distpsnr``, sources brighter than
~22.5 mag) and the reference-image PSF catalogue (``distnr``/``magnr``/``chinr``/``sharpnr``,
sources brighter than ~21 mag). Real/bogus scores: real sources get high ``rb``/``drb``; artefacts
low ones, overlapping more as ``difficulty`` grows. Medians of the real sample for comparison:
VS sgscore1 1.00, distpsnr1 0.26"; asteroid distpsnr1 10.8", ndethist 1; bogus rb 0.56, drb 0.001.
"""

from __future__ import annotations

import numpy as np

from stampnet.constants import PIXEL_SCALE_ARCSEC as ARCSEC_PER_PIXEL
from stampnet.simulation import classes

PS1_DEPTH = 22.5
#: The reference-image PSF catalogue reaches ~23.3 mag: the nearest reference source of every
#: labelled real alert is matched (magnr 99th percentile 23.2-23.5; asteroids, at random field
#: positions, median 22.9 at 7.9 px), where 1.6.4 cut it at 21.5 (asteroids: 20.4 at 15.7 px;
#: 1.6.5: 21.9 at 11.9 px, the faint end now held by field galaxies to 22.5 mag).
REF_CATALOG_DEPTH = 23.3
MISSING = -999.0


#: ZTF lists the three nearest PS1 sources within 30" (else -999); the 63" stamp holds that circle.
PS1_RADIUS_ARCSEC = 30.0
#: PS1 does not list a galaxy and the nucleus at its centre as two sources (real AGN: second PS1
#: source median 10.2" away; 1.6.5 listed the host at 0.03").
PS1_BLEND_ARCSEC = 1.0
#: Share of PS1 sources the point-source catalogue cannot score, given sgscore 0.5: measured over
#: the 1,564 real alerts of ../shared/data/ztf/alerts, 5-6 % of sources brighter than r = 20 mag;
#: 13-16 % of fainter ones with an r magnitude and 27-45 % of those without, 17-22 % of all
#: second and third neighbours, which are mostly faint (r median 20.8-21.0).
PS1_UNSCORED = ((20.0, 0.06), (np.inf, 0.2))
#: Real AGN nuclei are either point-like (quasars) or resolved with their host: sgscore1 < 0.2 for
#: 43 % of the 28 labelled real AGN alerts and > 0.8 for 43 % (1.6.5's beta(2, 2.5): 14 % and 3 %).
AGN_POINT_LIKE = 0.45


def ps1_score(rng, mag: float, extended: bool) -> float:
    """PS1 point-source score (Tachibana & Miller 2018) of a source, as ZTF reports it.

    Faint sources are scored less surely: among real neighbours of r = 21-22 mag 13-24 % score
    above 0.8 and 45-51 % below 0.2 (r < 18: 69-80 % and 1-4 %), so as a source nears the
    survey's depth its score spreads, whether it is a star or a compact galaxy.
    """
    unscored = next(share for limit, share in PS1_UNSCORED if mag < limit)
    if rng.random() < unscored:
        return 0.5
    if rng.random() < float(np.clip(0.25 * (mag - 19.0), 0.0, 0.7)):
        return rng.uniform(0.0, 1.0)
    return rng.beta(1.2, 8.0) if extended else 1.0 - rng.beta(1.0, 40.0)


#: The reference PSF catalogue's shape of a source (DAOPHOT sharp, chi), as it fades. Over the
#: 2,021 real alerts' nearest reference sources: sources fainter than 21.5 mag are noise, not
#: shape (sharpnr median -0.07 at 21.5-22.5 mag and -0.27 beyond, chinr 0.74-0.92, galaxies or
#: not); brighter galaxies stand out less as they fade (at 20.5-21.5 mag sharpnr 90th percentile
#: 0.33, chinr 3.0; at 17-20.5 mag 0.36-0.39 and 5.3-5.5); stars' chinr median 0.61 at < 17 mag.
#: 1.6.7 gave every galaxy sharpnr 0.08-0.6 and chinr 1.5-6 whatever its magnitude (faint
#: sources: sharpnr median 0.30, chinr 3.0).
REF_NOISE_LIMITED_MAG = 21.5


def reference_shape(rng, mag: float, extended: bool) -> tuple[float, float]:
    """(sharpnr, chinr) of a reference-catalogue source of magnitude ``mag``."""
    if mag >= REF_NOISE_LIMITED_MAG:
        sharp = rng.normal(-0.07 - 0.2 * (mag - 22.2), 0.15)
        return float(sharp), float(0.8 * np.exp(rng.normal(0.0, 0.3)))
    if extended:
        fade = float(np.clip((REF_NOISE_LIMITED_MAG - mag) / 1.5, 0.3, 1.0))
        return float(rng.uniform(0.08, 0.45) * fade), float(1.0 + rng.uniform(0.5, 5.0) * fade)
    return float(rng.normal(0.0, 0.03)), float(0.6 * np.exp(rng.normal(0.0, 0.45)))


def catalogue_fields(
    model: classes.ObjectModel, fid: int, reference_flux: dict, key: int, rng
) -> dict:
    """PS1 (``sgscore``/``distpsnr`` 1-3) and reference-image (``*nr``) matches of the candidate.

    As in ZTF, an object's PS1 matches are the same in each of its alerts and its reference-image
    match the same in each alert of a band: they are drawn from generators seeded by the object's
    ``key`` (and the band), and ``rng``, the catalogue's own stream, adds only each alert's
    astrometric scatter. (1.6.6-1.6.7 drew them anew for every alert.) ``reference_flux`` maps
    the bands to the template flux of the variable star or AGN nucleus at the candidate, which is
    itself catalogued; empty for the other classes.
    """
    own_rng = np.random.default_rng([key, 0])
    # PS1 positions of the real VS and AGN match: median 0.26" and 0.36" (1.2.0: 0.10").
    own_offset = abs(own_rng.normal(0, 0.35))
    resolved = model.host_kind == "nucleus" and own_rng.random() >= AGN_POINT_LIKE
    ps1_band = 2 if 2 in reference_flux or not reference_flux else 1
    sources = _with_own_source(model, ps1_band, reference_flux, own_offset, resolved)
    ps1 = [s for s in sources if s[1] < PS1_DEPTH and s[0] * ARCSEC_PER_PIXEL <= PS1_RADIUS_ARCSEC]
    ps1_rng = np.random.default_rng([key, 1])
    fields = {}
    for rank in range(3):
        name = rank + 1
        if rank < len(ps1):
            distance, mag, extended = ps1[rank]
            fields[f"distpsnr{name}"] = distance * ARCSEC_PER_PIXEL + abs(rng.normal(0, 0.05))
            fields[f"sgscore{name}"] = ps1_score(ps1_rng, mag, extended)
        else:  # fewer PS1 sources within 30"
            fields[f"distpsnr{name}"] = fields[f"sgscore{name}"] = MISSING
    sources = _with_own_source(model, fid, reference_flux, own_offset, resolved)
    catalogued = [s for s in sources if s[1] < REF_CATALOG_DEPTH and s[0] < 30.0]
    if catalogued:
        band_rng = np.random.default_rng([key, 2, fid])
        distance, mag, extended = catalogued[0]
        # The own source's magnitude is already what a PSF fit measures of nucleus and host.
        missed = 0.7 if extended and not (reference_flux and catalogued[0] is sources[0]) else 0.0
        fields["distnr"] = distance + abs(rng.normal(0, 0.05))
        fields["magnr"] = mag + missed + band_rng.normal(0, 0.03)
        fields["sigmagnr"] = 0.02 + 0.1 * np.exp(mag - 21.5)
        fields["sharpnr"], fields["chinr"] = reference_shape(band_rng, fields["magnr"], extended)
    else:
        for key_name in ("distnr", "magnr", "sigmagnr", "chinr", "sharpnr"):
            fields[key_name] = MISSING
    return {name: float(value) for name, value in fields.items()}


def _with_own_source(model, fid, reference_flux: dict, offset: float, resolved: bool) -> list:
    """The scene's sources in band ``fid`` (distance, mag, extended), nearest first, with the
    catalogued VS star or AGN nucleus (blended with what lies within 1" of it) first."""
    sources = classes.nearest_sources(model.scene, fid)
    flux = reference_flux.get(fid) or next(iter(reference_flux.values()), 0.0)
    if flux <= 0:
        return sources
    flux += blended_flux(model.scene, fid)
    sources = [s for s in sources if s[0] * ARCSEC_PER_PIXEL >= PS1_BLEND_ARCSEC]
    return [(offset, -2.5 * np.log10(flux), resolved), *sources]


def blended_flux(scene, fid: int) -> float:
    """What a PSF fit at the candidate adds from the static sources within 1" of it.

    A star adds all its flux; a galaxy the share of a PSF fit on it, for Gaussians of the
    template's seeing and of the galaxy's half-light radius: 2 s_psf^2 / (2 s_psf^2 + s_gal^2).
    Real AGN ``magnr`` median 17.56 (16.39-19.57, 28 alerts): the nucleus and its host's centre;
    1.6.8 counted the nucleus alone, 0.7 mag fainter if resolved (18.60; 1.6.7 18.16).
    """
    psf_var = 2.0 * (scene.template_seeing[fid] / 2.355) ** 2
    total = 0.0
    for source in scene.stars + scene.galaxies:
        distance = np.hypot(source.x - scene.x, source.y - scene.y) * ARCSEC_PER_PIXEL
        if distance >= PS1_BLEND_ARCSEC or source.flux[fid] <= 0:
            continue
        share = 1.0
        if isinstance(source, classes.Galaxy):
            share = psf_var / (psf_var + (source.r_eff / 1.177) ** 2)
        total += source.flux[fid] * share
    return float(total)


#: Artefacts sharper than the PSF; the others are residuals of sources. The 125 labelled real
#: bogus (mostly bad subtractions of stars) are PSF-like: classtar median 0.99 (10-90 %:
#: 0.81-1.00), fwhm 1.95 px (1.23-3.77), elong 1.16 (1.07-1.42); 1.6.7 drew classtar beta(1.5,
#: 1.2), fwhm 1-3 times the seeing and elong 1 + Exp(0.6): 0.58 (0.28-0.86), 3.6 px
#: (0.9-7.8), 1.37 (1.03-2.12).
SHARP_ARTEFACTS = ("cosmic_ray", "hot_pixel")


def shape_fields(model: classes.ObjectModel, seeing: float, difficulty: float, rng) -> dict:
    """SExtractor-like shape of the candidate in the difference and the real/bogus scores."""
    if model.label == "bogus":
        if model.artefact in SHARP_ARTEFACTS:
            fwhm, classtar = rng.uniform(0.6, 1.4), rng.beta(2.0, 1.5)
        else:  # residuals of stars and subtraction misfits: as PSF-like as the real ones
            fwhm, classtar = seeing * np.exp(rng.normal(0.0, 0.25)), 1.0 - rng.beta(0.6, 12.0)
        overlap = rng.random() < 0.25 * difficulty  # artefacts that fool the classifiers
        rb = rng.beta(6.0, 3.0) if overlap else rng.beta(2.0, 3.5)
        drb = rng.beta(4.0, 1.5) if overlap else rng.beta(0.4, 6.0)
        elong = 1.0 + rng.exponential(0.2 if model.artefact not in SHARP_ARTEFACTS else 0.6)
        if model.artefact == "satellite_streak":  # a line across the stamp, a PSF wide
            elong += rng.uniform(1.0, 4.0)
    else:
        fwhm = seeing * np.exp(rng.normal(0.0, 0.12))
        classtar = rng.beta(25.0, 1.5)
        rb = rng.beta(7.0, 2.0)
        drb = 1.0 - rng.beta(0.5, 30.0)
        if rng.random() < 0.1 * difficulty:
            drb = rng.beta(3.0, 2.0)
        elong = 1.0 + abs(rng.normal(0.0, 0.08))
        if model.label == "asteroid" and rng.random() < 0.15:
            elong += rng.uniform(0.3, 1.5)  # trailed fast mover
    return {
        "fwhm": float(fwhm),
        "classtar": float(classtar),
        "rb": float(rb),
        "drb": float(drb),
        "elong": float(elong),
        "nbad": int(model.artefact in ("hot_pixel", "edge") and rng.random() < 0.7),
    }


def solar_system_fields(model: classes.ObjectModel, magpsf: float, rng) -> dict:
    """Known minor planets (~60% of asteroid alerts) have an MPC match within a few arcsec."""
    if model.label == "asteroid" and rng.random() < 0.6:
        return {
            "ssdistnr": float(rng.uniform(0.0, 4.0)),
            "ssmagnr": float(magpsf + rng.normal(0.3, 0.3)),
            "ssnamenr": str(int(rng.integers(1000, 700000))),
        }
    return {"ssdistnr": MISSING, "ssmagnr": MISSING, "ssnamenr": "null"}
