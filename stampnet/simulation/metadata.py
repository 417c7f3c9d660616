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


def ps1_score(rng, mag: float, extended: bool, nucleus: bool = False) -> float:
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
    if nucleus:
        extended = rng.random() >= AGN_POINT_LIKE
    return rng.beta(1.2, 8.0) if extended else 1.0 - rng.beta(1.0, 40.0)


def catalogue_fields(model: classes.ObjectModel, fid: int, reference_flux: float, rng) -> dict:
    """PS1 (``sgscore``/``distpsnr`` 1-3) and reference-image (``*nr``) matches of the candidate.

    ``rng`` should be the catalogue's own generator: what is drawn here then leaves the stamps
    and the other candidate fields as they were.
    """
    sources = classes.nearest_sources(model.scene, fid)
    own = reference_flux > 0  # the variable star / AGN nucleus is itself catalogued
    if own:
        # PS1 positions of the real VS and AGN match: median 0.26" and 0.36" (1.2.0: 0.10").
        sources = [s for s in sources if s[0] * ARCSEC_PER_PIXEL >= PS1_BLEND_ARCSEC]
        sources.insert(0, (abs(rng.normal(0, 0.35)), -2.5 * np.log10(reference_flux), False))
    fields = {}
    ps1 = [s for s in sources if s[1] < PS1_DEPTH and s[0] * ARCSEC_PER_PIXEL <= PS1_RADIUS_ARCSEC]
    for rank in range(3):
        name = rank + 1
        if rank < len(ps1):
            distance, mag, extended = ps1[rank]
            nucleus = own and rank == 0 and model.host_kind == "nucleus"
            fields[f"distpsnr{name}"] = distance * ARCSEC_PER_PIXEL + abs(rng.normal(0, 0.05))
            fields[f"sgscore{name}"] = ps1_score(rng, mag, extended, nucleus)
        else:  # fewer PS1 sources within 30"
            fields[f"distpsnr{name}"] = fields[f"sgscore{name}"] = MISSING
    catalogued = [s for s in sources if s[1] < REF_CATALOG_DEPTH and s[0] < 30.0]
    if catalogued:
        distance, mag, extended = catalogued[0]
        fields["distnr"] = distance + abs(rng.normal(0, 0.05))
        fields["magnr"] = mag + (0.7 if extended else 0.0) + rng.normal(0, 0.03)
        fields["sigmagnr"] = 0.02 + 0.1 * np.exp(mag - 21.5)
        fields["chinr"] = rng.uniform(1.5, 6.0) if extended else rng.uniform(0.4, 1.3)
        fields["sharpnr"] = rng.uniform(0.08, 0.6) if extended else rng.normal(0.0, 0.03)
    else:
        for key in ("distnr", "magnr", "sigmagnr", "chinr", "sharpnr"):
            fields[key] = MISSING
    return {key: float(value) for key, value in fields.items()}


def shape_fields(model: classes.ObjectModel, seeing: float, difficulty: float, rng) -> dict:
    """SExtractor-like shape of the candidate in the difference and the real/bogus scores."""
    if model.label == "bogus":
        if model.artefact in ("cosmic_ray", "hot_pixel"):
            fwhm, classtar = rng.uniform(0.6, 1.4), rng.beta(2.0, 1.5)
        else:
            fwhm, classtar = seeing * rng.uniform(1.0, 3.0), rng.beta(1.5, 1.2)
        overlap = rng.random() < 0.25 * difficulty  # artefacts that fool the classifiers
        rb = rng.beta(6.0, 3.0) if overlap else rng.beta(2.0, 3.5)
        drb = rng.beta(4.0, 1.5) if overlap else rng.beta(0.4, 6.0)
        elong = 1.0 + rng.exponential(0.6)
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
