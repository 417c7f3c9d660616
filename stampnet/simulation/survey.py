"""How often ZTF had covered an alert's position, and detected something there: the history counts.

ZTF's ``ncovhist`` counts every time a position fell on a field and readout channel since the
survey opened, ``ndethist`` every raw detection there (down to S/N ~3, all programmes), and
``jdstarthist`` is the first of those detections. They measure the survey's age at the alert and
the cadence of the position's fields as much as the object, so they are drawn from the survey:

- The alert dates span the public survey (2018 to 2025), as in the real sample. 1.6.6 put every
  object in one 2020 season and drew ``ncovhist`` from 20-1,500 for every class; real labelled
  SN alerts (2021-2025) have 860-4,510 (10-90 %).
- The position's coverage rate, coverages per day since the survey opened, is log-normal: real
  alerts of all classes give 0.74 per day (10-90 %: 0.42-1.6) in 2023, and, by class, SN 0.73,
  VS 1.02, AGN 0.50.
- A simulated epoch is a public-survey visit; the position's other visits (partnership and
  high-cadence programmes, overlapping fields) detect a persistent source as well, so its
  ``ndethist`` grows by (current visits per day / public visits per day) per S/N >= 3 epoch.
  The cadence grew over the survey: real SN alerts 5-120 days after their first detection
  gained detections 1.76 times (quartiles 0.96-3.97) as fast per day as their position's
  coverage rate since 2018. 1.6.6 counted alerts only (at most 12 per object), which gave
  simulated SNe a median ``ndethist`` of 6 against a real 50.
- One real SN object in five (10 of 50) sits where ZTF had detected something years before (the
  host's nucleus, an earlier transient, subtraction residuals): ``jdstarthist`` 0.5-7 years before
  the alert, ``ndethist`` 90-2,050. Simulated SN positions get such a history at that rate.

The alerts themselves are a draw from an object's detections: a real SN alert is any of its SN's
(``emitted_detections``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stampnet.simulation import lightcurves

#: The ZTF survey's first night (2018-03-20), from which its history counts run.
SURVEY_OPENED_JD = 2458197.5
#: Objects start within the public survey's years, 2018-06-01 to 2025-06-01.
FIRST_START_JD = 2458270.5
LAST_START_JD = 2460827.5
#: Coverages per day of a position by all programmes: log-normal, median and log-sigma.
COVERAGE_RATE = (0.74, 0.55)
#: Current detections per day of a persistent source against the coverage rate: log-normal.
CADENCE_GROWTH = (1.76, 0.9)
#: Public-survey visits per day that the simulated cadence makes (one night in 2 days on
#: average, a second band on 30 % of them).
PUBLIC_VISITS_PER_DAY = (1.0 + lightcurves.BOTH_BANDS_FRACTION) / np.mean(lightcurves.CADENCE_DAYS)
#: ZTF counts raw detections down to this S/N in ``ndethist``.
RAW_DETECTION_SNR = 3.0
#: Real SN positions with an earlier history, and the fraction of coverages that detected
#: something there (log-uniform): ndethist 91-2,051 over 0.5-7 years at ~0.7 coverages per day.
SN_HISTORY_FRACTION = 0.2
SN_HISTORY_DUTY = (0.05, 1.0)
#: Variable stars are detected from their position's first coverage on, in 6-61 % of the
#: coverages (real VS alerts' ndethist / ncovhist, 10-90 %; their jdstarthist is within weeks of
#: the survey's start). AGN: 31 % median; 9 of the 28 real AGN alerts come from AGN first
#: detected 0-60 days before (ndethist 2-14), the others from ones detected since 2018.
VS_DUTY = (0.05, 0.65)
AGN_DUTY = (0.1, 0.65)
AGN_RECENT_FRACTION = 0.3
AGN_RECENT_DAYS = 60.0
#: Classes that stay at their position, so that every programme's visit can detect them.
PERSISTENT = ("AGN", "SN", "VS")


@dataclasses.dataclass(frozen=True)
class Coverage:
    rate: float  # coverages per day since the survey opened
    visits_per_epoch: float  # all programmes' detecting visits per simulated (public) epoch
    prior_detections: int  # raw detections before the simulated epochs
    first_detection_jd: float | None  # jdstarthist when there are prior detections
    persistent: bool

    def ncovhist(self, jd: float, ndethist: int) -> int:
        return max(int(round(self.rate * (jd - SURVEY_OPENED_JD))), ndethist)

    def ndethist(self, raw_detections: int, alerts: int) -> int:
        """Detections so far, given the simulated epochs' raw (S/N >= 3) detections and alerts."""
        if not self.persistent:  # a moving or one-off source: its own detections only
            return self.prior_detections + alerts
        counted = int(round(self.visits_per_epoch * raw_detections))
        return self.prior_detections + max(alerts, counted)


def coverage(rng, label: str, prior_detections: int, history_start: float, start: float):
    """The survey's history at an object's position before its simulated epochs begin.

    ``prior_detections`` and ``history_start`` (``classes.make_object``, ``simulate``) are kept
    for bogus, an artefact that recurs; the persistent classes draw theirs here. Detections never
    outnumber the coverages of the time they span.
    """
    rate = float(np.clip(COVERAGE_RATE[0] * np.exp(rng.normal(0.0, COVERAGE_RATE[1])), 0.05, 5.0))
    growth = CADENCE_GROWTH[0] * np.exp(rng.normal(0.0, CADENCE_GROWTH[1]))
    if label in PERSISTENT:
        history_start, prior_detections = _persistent_history(rng, label, rate, start)
    history_start = max(history_start, SURVEY_OPENED_JD + 1.0)
    prior_detections = min(prior_detections, int(rate * max(start - history_start, 0.0)))
    return Coverage(
        rate=rate,
        visits_per_epoch=float(rate * growth / PUBLIC_VISITS_PER_DAY),
        prior_detections=prior_detections,
        first_detection_jd=history_start if prior_detections else None,
        persistent=label in PERSISTENT,
    )


def _persistent_history(rng, label: str, rate: float, start: float) -> tuple[float, int]:
    """(first detection, detections before ``start``) at a VS, AGN or SN position."""
    first_coverage = SURVEY_OPENED_JD + rng.exponential(30.0)
    if label == "VS":
        first, duty = first_coverage, rng.uniform(*VS_DUTY)
    elif label == "AGN" and rng.random() < AGN_RECENT_FRACTION:
        first, duty = start - rng.uniform(0.0, AGN_RECENT_DAYS), rng.uniform(*AGN_DUTY)
    elif label == "AGN":
        first, duty = first_coverage, rng.uniform(*AGN_DUTY)
    elif rng.random() < SN_HISTORY_FRACTION:
        first = first_coverage + rng.uniform(0.0, 1.0) * (start - first_coverage)
        duty = float(np.exp(rng.uniform(*np.log(SN_HISTORY_DUTY))))
    else:
        return start, 0
    first = min(first, start - 1.0)
    return first, int(round(duty * rate * (start - first)))


def days_to_year(rng, season_jd: float) -> float:
    """Whole days that move an object drawn in one season to a uniform date of the public
    survey; whole, so that its nights and the light curve's sampling stay as drawn."""
    return float(np.floor(rng.uniform(FIRST_START_JD, LAST_START_JD) - season_jd))


def raw_detection(difference_flux: float, flux_error: float) -> bool:
    return bool(np.isfinite(flux_error) and abs(difference_flux) >= RAW_DETECTION_SNR * flux_error)


#: SN alerts come from any time of the SN's life, as in the real stream: labelled real SN alerts
#: without an earlier history at their position are 22.6 days after the first detection (median;
#: 10-90 %: 8.9-107, 70 alerts), 1.6.8's first ``max_alerts`` detections 10.7 (2.0-24). An SN's
#: whole detectable life (at most this many detections) is rendered, then drawn from.
SN_LIFE_DETECTIONS = 80


def emitted_detections(rng, detected: list[int], max_alerts: int) -> list[int]:
    """The detections that become alerts: all of them up to ``max_alerts``, else the first one
    (an object's sequence starts at its discovery) and a random draw of the later ones."""
    if len(detected) <= max_alerts:
        return detected
    later = rng.choice(detected[1:], size=max_alerts - 1, replace=False)
    return [detected[0], *sorted(int(number) for number in later)]
