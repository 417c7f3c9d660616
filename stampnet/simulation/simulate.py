"""``simulate(out_dir, ...)``: write a labelled set of simulated ZTF alerts, ZTF-archive style.

Layout of ``out_dir``: ``alerts/ztf_public_YYYYMMDD.tar.gz`` (one ``<candid>.avro`` per alert,
official ``ztf.alert`` 4.02 schema) and ``labels.csv`` (objectId, candid, label). Each object draws
from its own random stream ``(seed, object index)``, so output does not depend on the number of
worker processes, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import functools
import multiprocessing
import os
import string
import time
from pathlib import Path

import numpy as np

from stampnet.simulation import classes, history, metadata, observe, packets, survey

#: Bumped whenever the simulated data change, so cached built-in datasets are rebuilt. 1.4.0:
#: per-exposure noise excess, AGN hosts relative to the nucleus, brighter variable stars and bogus,
#: PS1 offsets (realism against the labelled real sample), and the light-curve history
#: (prv_candidates with upper limits, fp_hists) of every class. 1.5.x: realism per change
#: (benchmarks/realism.py, docs in the commit log): 1.5.0 white science noise; 1.5.1 field
#: star and galaxy counts of real templates; 1.5.2 reported PSF-fit errors against pixel noise.
#: 1.6.6: PS1 matches as ZTF lists them (within 30", a nucleus and its host one source, the
#: point-source score's 0.5 and faint stars' spread), drawn from their own random stream.
#: 1.6.7: alert dates over 2018-2025 and the history counts as ZTF makes them
#: (``stampnet.simulation.survey``), drawn from their own random stream. 1.6.8: the reference
#: catalogue's sharpnr/chinr by magnitude, and bogus residuals as PSF-like as real ones. 1.6.9:
#: SN alerts from the whole life of the SN, and an AGN's reference source its nucleus and host.
#: 1.6.10: bogus satellite glints and streaks. 1.6.11: field densities vary from field to field.
#: 1.6.12: variable stars as close to the Galactic plane, and stars there as dense, as real ones.
SIMULATOR_VERSION = "1.6.12"
#: The season an object's light curve is drawn in (2020-06-01 and 120 days); ``survey`` then
#: moves it by whole days into the years of the public survey.
SEASON_START_JD = 2459001.5
SEASON_DAYS = 120.0


def _object_id(rng, jd: float) -> str:
    year = int(packets.night_name(jd)[2:4])
    letters = "".join(rng.choice(list(string.ascii_lowercase), size=7))
    return f"ZTF{year:02d}{letters}"


def _alert_packets(index, label, seed, difficulty, max_alerts):
    """All alerts of object ``index``: (jd, candid, avro bytes, objectId, label)."""
    for attempt in range(100):  # redraw objects that never reach 5 sigma (faint AGN, ...)
        rng = np.random.default_rng([seed, index, attempt])
        # The 30-day history (upper limits, forced photometry), the catalogue matches (1.6.6 on)
        # and the survey's history counts (1.6.7 on) have their own generators: changing them
        # leaves the stamps and candidates drawn from ``rng`` as they are.
        history_rng, catalogue_rng, survey_rng, emission_rng = rng.spawn(4)
        model = classes.make_object(label, rng, difficulty)
        season = SEASON_START_JD + rng.uniform(0.0, SEASON_DAYS)
        start = season + survey.days_to_year(survey_rng, season)
        rendered = survey.SN_LIFE_DETECTIONS if label == "SN" else max_alerts
        epochs = observe.observe(model, rng, difficulty, start, rendered)
        if any(epoch.detected for epoch in epochs):
            break
    else:
        raise RuntimeError(f"object {index} ({label}) was never detected in 100 draws")
    first = next(epoch for epoch in epochs if epoch.detected)
    object_id = _object_id(rng, first.jd)
    history_start = start - (rng.uniform(100.0, 800.0) if model.prior_detections else 0.0)
    place = survey.coverage(survey_rng, label, model.prior_detections, history_start, start)
    # The VS star or AGN nucleus at the candidate is itself in the catalogues (per band).
    own = {e.exposure.fid: e.reference_flux for e in epochs} if label in ("VS", "AGN") else {}
    catalogue = functools.partial(
        metadata.catalogue_fields,
        model,
        reference_flux=own,
        key=int(catalogue_rng.integers(2**62)),
        rng=catalogue_rng,
    )
    seen_once = model.label in ("asteroid", "bogus") and model.duration <= 1.0
    visits = history.field_visits(history_rng, first, difficulty, label) if seen_once else []
    forced = history.forced_fluxes(history_rng, visits + epochs)
    raw = [
        survey.raw_detection(flux, epoch.flux_error)
        for epoch, flux in zip(epochs, forced[len(visits) :], strict=True)
    ]
    first_raw_jd = next(epoch.jd for epoch, found in zip(epochs, raw, strict=True) if found)
    detected = [number for number, epoch in enumerate(epochs) if epoch.detected]
    emitted = set(survey.emitted_detections(emission_rng, detected, max_alerts))
    results, detections = [], 0
    for number, epoch in enumerate(epochs):
        if not epoch.detected:
            continue
        detections += 1
        if number not in emitted:  # still a detection in later alerts' prv_candidates
            rcid = int(emission_rng.integers(0, 64))
            pid, candid = packets.identifiers(epoch.jd, index, number, rcid)
            epoch.candidate.update(pid=pid, candid=candid)
            continue
        candidate, stamps = _candidate(model, epoch, rng, difficulty, index, number, catalogue)
        candidate["ndethist"] = place.ndethist(sum(raw[: number + 1]), detections)
        candidate["ncovhist"] = place.ncovhist(epoch.jd, candidate["ndethist"])
        candidate["jdstarthist"] = place.first_detection_jd or first_raw_jd
        prv = [
            _prv_candidate(previous)
            for previous in visits + epochs[:number]
            if epoch.jd - previous.jd < history.HISTORY_DAYS
        ]
        packet = {
            "schemavsn": packets.SCHEMA_VERSION,
            "publisher": "stampnet simulator " + SIMULATOR_VERSION,
            "objectId": object_id,
            "candid": candidate["candid"],
            "candidate": candidate,
            "prv_candidates": prv or None,
            "fp_hists": history.fp_hists(visits + epochs, forced, epoch.jd),
            **{
                field: packets.cutout(image, candidate["candid"], candidate["pid"], kind)
                for field, image, kind in zip(
                    ("cutoutScience", "cutoutTemplate", "cutoutDifference"),
                    stamps,
                    ("sci", "ref", "diff"),
                    strict=True,
                )
            },
        }
        epoch.candidate.update(candid=candidate["candid"], pid=candidate["pid"])
        payload = packets.avro_bytes(packet)
        member = packets.tar_member(epoch.jd, candidate["candid"], payload)
        results.append((epoch.jd, candidate["candid"], member, object_id, label))
    return results


def _candidate(model, epoch, rng, difficulty, index, number, catalogue_of_band):
    exposure = epoch.exposure
    nid = int(epoch.jd - packets.NID_ZERO_JD)
    rcid = int(rng.integers(0, 64))
    pid, candid = packets.identifiers(epoch.jd, index, number, rcid)
    stamps = epoch.stamps
    if epoch.candidate["isdiffpos"] == "f":
        # ZTF cuts negative candidates out of the negative (ref - sci) difference image, so the
        # source is positive in cutoutDifference (true of all 509 such real alerts measured).
        stamps = (stamps[0], stamps[1], -stamps[2], stamps[3])
    images, xpos, ypos = observe.finish_stamps(rng, stamps, model.label, model.artefact)
    measured = epoch.candidate
    catalogue = catalogue_of_band(exposure.fid)  # the object's matches in this band
    shape = metadata.shape_fields(model, exposure.seeing, difficulty, rng)
    solar = metadata.solar_system_fields(model, measured["magpsf"], rng)
    jitter = 0.1 / 3600.0  # astrometric scatter of ~0.1"
    ra = model.ra + rng.normal(0, jitter) / max(np.cos(np.radians(model.dec)), 1e-3)
    dec = model.dec + rng.normal(0, jitter)
    nr_ok = catalogue["distnr"] > 0
    magap = measured["magpsf"] + rng.normal(0.0, measured["sigmapsf"])
    values = {
        "jd": epoch.jd,
        "fid": exposure.fid,
        "pid": pid,
        "diffmaglim": epoch.diffmaglim,
        "pdiffimfilename": f"ztf_{packets.night_name(epoch.jd)}_{pid}_scimrefdiffimg.fits",
        "programpi": "Kulkarni",
        "programid": 1,
        "candid": candid,
        "isdiffpos": measured["isdiffpos"],
        "tblid": int(number),
        "nid": nid,
        "rcid": rcid,
        "field": int(rng.integers(245, 880)),
        "xpos": xpos,
        "ypos": ypos,
        "ra": float(ra),
        "dec": float(dec),
        "magpsf": measured["magpsf"],
        "sigmapsf": measured["sigmapsf"],
        "chipsf": float(rng.gamma(4.0, 0.3) * (3.0 if model.label == "bogus" else 1.0)),
        "magap": float(magap),
        "sigmagap": measured["sigmapsf"] * 1.1,
        **catalogue,
        "sky": float(rng.normal(0.0, 0.4)),
        "magdiff": float(magap - measured["magpsf"]),
        **{key: value for key, value in shape.items()},
        "mindtoedge": float(min(xpos, ypos, 3072 - xpos, 3080 - ypos)),
        "magfromlim": float(epoch.diffmaglim - magap),
        "seeratio": float(np.clip(shape["fwhm"] / exposure.seeing, 0.0, 2.0)),
        "aimage": shape["fwhm"] / 2.355 * np.sqrt(shape["elong"]),
        "bimage": shape["fwhm"] / 2.355 / np.sqrt(shape["elong"]),
        "nneg": int(rng.integers(0, 4 if model.label != "bogus" else 12)),
        **solar,
        "sumrat": float(1.0 - rng.beta(1.0, 20.0 if model.label != "bogus" else 3.0)),
        "ranr": float(ra if not nr_ok else ra + catalogue["distnr"] / 3600.0),
        "decnr": float(dec),
        "scorr": float(measured["snr"] * rng.uniform(1.5, 3.0)),
        "jdendhist": epoch.jd,
        "tooflag": 0,
        "nmtchps": int(rng.integers(1, 20)),
        "rfid": int(rng.integers(10**8, 10**9)),
        "jdstartref": 2458200.0,
        "jdendref": 2458300.0,
        "nframesref": model.scene.nframes_ref[exposure.fid],
        "rbversion": "t17_f5_c3",
        "magzpsci": exposure.zero_point,
        "magzpsciunc": 1e-5,
        "magzpscirms": 0.03,
        "nmatches": int(rng.integers(200, 2000)),
        "exptime": 30.0,
        "drbversion": "d6_m7",
    }
    values["aimagerat"] = values["aimage"] / shape["fwhm"]
    values["bimagerat"] = values["bimage"] / shape["fwhm"]
    return packets.candidate_record(values), images


def _prv_candidate(epoch) -> dict:
    values = {
        "jd": epoch.jd,
        "fid": epoch.exposure.fid,
        "pid": int(epoch.jd - packets.NID_ZERO_JD) * 10**9,
        "diffmaglim": epoch.diffmaglim,
        "programid": 1,
        "rbversion": "t17_f5_c3",
    }
    if epoch.detected:
        values.update({k: epoch.candidate[k] for k in ("magpsf", "sigmapsf", "isdiffpos")})
        values["candid"] = epoch.candidate.get("candid")
    return packets.prv_candidate_record(values)


def _worker(task):
    return _alert_packets(*task)


def simulate(
    out_dir,
    *,
    num_objects: int = 1000,
    seed: int = 0,
    difficulty: float = 0.5,
    max_alerts: int = 12,
    classes_: tuple[str, ...] = classes.CLASSES,
    workers: int | None = None,
) -> dict:
    """Writes ``num_objects`` simulated objects (balanced over ``classes_``) under ``out_dir``.

    Returns a summary: numbers of objects and alerts per class, paths, seconds, alerts per second.
    """
    if num_objects < 1:
        raise ValueError(f"num_objects must be >= 1, received {num_objects}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], received {difficulty}")
    if max_alerts < 1:
        raise ValueError(f"max_alerts must be >= 1, received {max_alerts}")
    unknown = [name for name in classes_ if name not in classes.CLASSES]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; expected names from {classes.CLASSES}")
    out_dir = Path(out_dir)
    tasks = [
        (index, classes_[index % len(classes_)], seed, difficulty, max_alerts)
        for index in range(num_objects)
    ]
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if num_objects >= 100 else 1
    started = time.perf_counter()
    counts = {name: {"objects": 0, "alerts": 0} for name in classes_}
    with packets.NightlyArchive(out_dir / "alerts") as archive:
        labels_path = out_dir / "labels.csv"
        with open(labels_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["objectId", "candid", "label"])
            if workers > 1:
                context = multiprocessing.get_context("spawn")
                with context.Pool(workers) as pool:
                    _consume(pool.imap(_worker, tasks, chunksize=4), archive, writer, counts)
            else:
                _consume(map(_worker, tasks), archive, writer, counts)
        tarballs = archive.close()
    seconds = time.perf_counter() - started
    total = sum(count["alerts"] for count in counts.values())
    return {
        "generator": f"stampnet.simulation {SIMULATOR_VERSION}",
        "seed": seed,
        "difficulty": difficulty,
        "num_objects": num_objects,
        "num_alerts": total,
        "counts": counts,
        "labels": str(labels_path),
        "tarballs": [str(path) for path in tarballs],
        "seconds": seconds,
        "alerts_per_second": total / seconds if seconds > 0 else float("nan"),
    }


def _consume(results, archive, writer, counts):
    for alerts in results:
        for jd, candid, payload, object_id, label in alerts:
            archive.add(jd, payload)
            writer.writerow([object_id, candid, label])
            counts[label]["alerts"] += 1
        if alerts:
            counts[alerts[0][4]]["objects"] += 1
