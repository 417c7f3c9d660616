"""The light-curve history of simulated alerts: upper limits and forced photometry.

Every simulated packet carries, like a real ZTF 4.02 packet, the previous 30 days of its position:
``prv_candidates`` (earlier detections, and non-detections as upper limits at ``diffmaglim``,
written by ``simulate``) and ``fp_hists``, forced PSF photometry of the difference image at every
earlier epoch, detected or not. Both come from the same epochs (``observe.Epoch``), so they agree:
where a stamp was rendered the forced flux is the PSF fit of that difference stamp
(``Epoch.difference_flux``, what made the detection), elsewhere the true difference flux plus
Gaussian noise of the epoch's flux error, i.e. ~0 for an asteroid's or a bogus's position
before it appeared, and the variable's flux against its template otherwise.

Objects seen once (asteroids, most bogus) were on fields ZTF had observed before: they get
``field_visits`` in the 30 days before, where nothing was at their position (upper limits, forced
flux of pure noise), as in real asteroid alerts' histories. The noise of the history is drawn from
its own generator, so adding it leaves the stamps and candidates of an object unchanged.
"""

from __future__ import annotations

import numpy as np

from stampnet.simulation import lightcurves, observe, packets, physics

HISTORY_DAYS = 30.0


def field_visits(rng, first: observe.Epoch, difficulty: float, label: str) -> list:
    """Earlier observations of the field of an object seen once: undetected epochs, no flux."""
    times, fids = lightcurves.cadence(rng, first.jd - HISTORY_DAYS, HISTORY_DAYS - 0.5)
    visits = []
    for jd, fid in zip(times, fids, strict=True):
        exposure = observe._exposure(rng, int(fid), difficulty, label)
        limit = observe._limit(exposure)
        visits.append(
            observe.Epoch(
                float(jd),
                exposure,
                float(physics.magnitude(limit, exposure.zero_point)),
                difference_flux=0.0,
                flux_error=float(observe.flux_error(exposure)),
            )
        )
    return visits


def forced_fluxes(rng, epochs: list) -> np.ndarray:
    """The forced-photometry flux (DN) of every epoch, drawn once per object."""
    noise = rng.normal(size=len(epochs))
    return np.array(
        [
            epoch.difference_flux
            if epoch.measured
            else epoch.difference_flux + draw * epoch.flux_error
            for epoch, draw in zip(epochs, noise, strict=True)
        ],
        dtype=np.float64,
    )


def fp_hists(epochs: list, fluxes: np.ndarray, jd: float) -> list[dict] | None:
    """``fp_hists`` of a packet at ``jd``: forced photometry of the epochs of the 30 days before."""
    records = [
        packets.fp_hist_record(
            {
                "fid": int(epoch.exposure.fid),
                "pid": int(epoch.jd - packets.NID_ZERO_JD) * 10**9,
                "rfid": 0,
                "programid": 1,
                "jd": float(epoch.jd),
                "magzpsci": float(epoch.exposure.zero_point),
                "diffmaglim": float(epoch.diffmaglim),
                "sciinpseeing": float(epoch.exposure.seeing),
                "exptime": 30.0,
                "forcediffimflux": float(flux),
                "forcediffimfluxunc": float(epoch.flux_error),
                "procstatus": "0",
            }
        )
        for epoch, flux in zip(epochs, fluxes, strict=True)
        if 0.0 < jd - epoch.jd < HISTORY_DAYS
    ]
    return records or None
