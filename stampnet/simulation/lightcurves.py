"""Light curves of the simulated classes and the survey cadence that samples them.

Fluxes are in magnitude units, ``F = 10 ** (-0.4 * m)``; ``physics.flux_from_magnitude`` turns them
into DN with an exposure's zero point. Each curve returns the flux at the observation times and the
flux of the reference (template) epoch, since a difference image only sees ``F(t) - F_ref``.
"""

from __future__ import annotations

import numpy as np

#: ZTF's public survey revisits each field every ~2-3 nights in g and r (Bellm et al. 2019).
CADENCE_DAYS = (1.0, 3.0)
#: Fraction of nights with both g and r (the two visits are ~30-60 min apart).
BOTH_BANDS_FRACTION = 0.3


def cadence(rng: np.random.Generator, start: float, duration: float):
    """Observation times (JD) and filter ids (1 = g, 2 = r) over ``duration`` days."""
    times, fids = [], []
    t = start + rng.uniform(0.0, CADENCE_DAYS[1])
    while t < start + duration:
        night = np.floor(t - 0.5) + 0.5 + rng.uniform(0.15, 0.45)  # ZTF nights are ~JD x.65-x.95
        first = int(rng.integers(1, 3))
        times.append(night)
        fids.append(first)
        if rng.random() < BOTH_BANDS_FRACTION:
            times.append(night + rng.uniform(0.02, 0.05))
            fids.append(3 - first)
        t += rng.uniform(*CADENCE_DAYS)
    return np.array(times), np.array(fids, dtype=np.int64)


def bazin(times, t0, rise, fall):
    """Bazin et al. (2009) supernova shape, normalised to a peak of 1."""
    phase = np.asarray(times) - t0
    shape = np.exp(-phase / fall) / (1.0 + np.exp(-phase / rise))
    peak_phase = rise * np.log(fall / rise - 1.0) if fall > 2 * rise else 0.0
    peak = np.exp(-peak_phase / fall) / (1.0 + np.exp(-peak_phase / rise))
    return shape / peak


def supernova(rng, times, fids, peak_mag: float, t_peak: float):
    """SN: Bazin rise and decline; g fades faster than r (cooling photosphere)."""
    rise = rng.uniform(2.0, 6.0)
    fall = {1: rng.uniform(15.0, 30.0), 2: rng.uniform(25.0, 45.0)}
    colour = {1: rng.normal(-0.05, 0.1), 2: 0.0}  # g - r at peak
    t0 = t_peak - rise * np.log(max(fall[2] / rise - 1.0, 1.01))
    flux = np.zeros(len(times))
    for fid in (1, 2):
        sel = fids == fid
        flux[sel] = 10 ** (-0.4 * (peak_mag + colour[fid])) * bazin(times[sel], t0, rise, fall[fid])
    return flux, {1: 0.0, 2: 0.0}  # the reference predates the explosion


def damped_random_walk(rng, times, fids, mean_mag: float):
    """AGN: damped random walk in magnitude (Kelly et al. 2009; MacLeod et al. 2010 values)."""
    tau = rng.uniform(100.0, 500.0)  # days
    sf_inf = rng.uniform(0.2, 0.45)  # mag; g varies ~1.3x more than r
    order = np.argsort(times)
    walk = np.zeros(len(times))
    value = rng.normal(0.0, sf_inf / np.sqrt(2.0))
    previous = times[order[0]] if len(times) else 0.0
    for index in order:
        decay = np.exp(-(times[index] - previous) / tau)
        value = value * decay + rng.normal(0.0, sf_inf / np.sqrt(2.0) * np.sqrt(1 - decay**2))
        walk[index] = value
        previous = times[index]
    scale = np.where(fids == 1, 1.3, 1.0)
    colour = np.where(fids == 1, 0.3, 0.0)
    flux = 10 ** (-0.4 * (mean_mag + colour + scale * walk))
    # The reference coadd spans months: it sees the mean of the walk, not one of its values.
    reference = {1: 10 ** (-0.4 * (mean_mag + 0.3)), 2: 10 ** (-0.4 * mean_mag)}
    return flux, reference


def _log_uniform(rng, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def periodic(rng, times, fids, mean_mag: float):
    """VS: an RR Lyrae-like sawtooth, an eclipsing binary or a Mira-like long-period sinusoid.

    Amplitudes are drawn log-uniform over each kind's range (RRc ~0.3 mag to RRab ~1.2 mag;
    grazing to deep eclipses; Miras in r), so that small variations of bright stars are as common
    as in real alerts: magpsf - magnr of the labelled real variable stars spans 10-90% -0.2-2.5
    (the difference a fraction of the star, or larger than it), simulated 1.5.2 0.7-2.0.
    """
    kind = rng.choice(["rrlyrae", "eclipsing", "mira"], p=[0.45, 0.4, 0.15])
    phase_offset = rng.uniform()
    if kind == "rrlyrae":
        period, amplitude = rng.uniform(0.25, 0.8), _log_uniform(rng, 0.3, 1.2)
        phase = (times / period + phase_offset) % 1.0
        shape = np.where(phase < 0.15, phase / 0.15, 1.0 - (phase - 0.15) / 0.85)  # fast rise
        delta = amplitude * (0.5 - shape)
    elif kind == "eclipsing":
        period, depth = rng.uniform(0.3, 5.0), _log_uniform(rng, 0.05, 1.5)
        phase = (times / period + phase_offset) % 1.0
        width = rng.uniform(0.04, 0.1)
        dip = np.exp(-0.5 * (np.minimum(phase, 1 - phase) / width) ** 2)
        dip += 0.5 * np.exp(-0.5 * ((phase - 0.5) / width) ** 2)
        delta = depth * dip
    else:
        period, amplitude = rng.uniform(150.0, 400.0), _log_uniform(rng, 1.5, 4.0)
        delta = 0.5 * amplitude * np.sin(2 * np.pi * (times / period + phase_offset))
    band_scale = np.where(fids == 1, 1.25, 1.0)
    colour = np.where(fids == 1, rng.uniform(0.2, 0.8), 0.0)
    flux = 10 ** (-0.4 * (mean_mag + colour + band_scale * delta))
    # Reference flux: the phase-averaged flux (a coadd of many random phases).
    grid = np.linspace(0.0, 1.0, 200, endpoint=False) * (period if kind != "mira" else 1.0)
    reference = {}
    for fid, scale in ((1, 1.25), (2, 1.0)):
        if kind == "mira":
            ref_delta = np.zeros(1)  # long-period: the coadd window sets no clean average
            ref_delta[0] = 0.5 * amplitude * np.sin(2 * np.pi * rng.uniform())
        elif kind == "rrlyrae":
            phase = (grid / period) % 1.0
            ref_delta = amplitude * (
                0.5 - np.where(phase < 0.15, phase / 0.15, 1 - (phase - 0.15) / 0.85)
            )
        else:
            phase = (grid / period) % 1.0
            dip = np.exp(-0.5 * (np.minimum(phase, 1 - phase) / width) ** 2)
            ref_delta = depth * (dip + 0.5 * np.exp(-0.5 * ((phase - 0.5) / width) ** 2))
        band_colour = colour[fids == fid][0] if np.any(fids == fid) else 0.0
        reference[fid] = float(np.mean(10 ** (-0.4 * (mean_mag + band_colour + scale * ref_delta))))
    return flux, reference
