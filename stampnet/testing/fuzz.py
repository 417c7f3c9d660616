"""Fuzzing the readers with mutated real alerts: no crash, no hang, no NaN, nothing lost.

``run_fuzz`` feeds the cases of ``stampnet.testing.mutators`` to ``iter_alerts`` in a worker
process (a separate interpreter, so that a hang is cut off by a per-case timeout and a hard crash
is seen as the worker dying) and checks, for every case:

- crash: an exception escaped the reader (bad input must become a rejection, never an error);
- hang: the case took longer than the timeout;
- tensors: every yielded alert has (63, 63, 3) finite float32 stamps, a boolean mask that is
  False wherever a stamp is 0-filled, and metadata that is a number or NaN (missing), never inf;
- lost: the file yielded neither an alert nor a rejection naming it.

For a sample of the yielded alerts it also runs the model inputs (``StampPreprocessing``,
``FeatureNormalization``) and counts non-finite values there.

Worker and parent talk in JSON lines over pipes (no pickle): the parent sends case indices, the
worker rebuilds each case from ``(seed, index)`` and answers with its findings.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from stampnet.constants import STAMP_SHAPE
from stampnet.features import METADATA_FIELDS

#: Seconds reading one case may take before it counts as a hang (it takes ~10-50 ms).
DEFAULT_TIMEOUT = 20.0
#: Seconds the worker may take to make a case (up to a few seconds on a busy machine).
MAKING_TIMEOUT = 300.0


@dataclasses.dataclass
class FuzzReport:
    """Totals of a fuzz run; ``failures`` holds one line per bad case (crash, hang, ...)."""

    cases: int = 0
    alerts: int = 0
    rejections: int = 0
    crashes: int = 0
    hangs: int = 0
    nonfinite_tensors: int = 0
    lost_inputs: int = 0
    model_inputs_checked: int = 0
    nonfinite_model_inputs: int = 0
    fuzzer_errors: int = 0  # cases the mutators failed to make (bugs of the fuzzer)
    seconds: float = 0.0
    mutators: dict = dataclasses.field(default_factory=dict)
    failures: list = dataclasses.field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.crashes
            or self.hangs
            or self.nonfinite_tensors
            or self.lost_inputs
            or self.nonfinite_model_inputs
            or self.fuzzer_errors
        )

    def summary(self) -> str:
        lines = [
            f"cases {self.cases}  alerts {self.alerts}  rejections {self.rejections}  "
            f"({self.seconds:.0f} s)",
            f"crashes {self.crashes}  hangs {self.hangs}  NaN/inf in alert tensors "
            f"{self.nonfinite_tensors}  inputs lost without a rejection {self.lost_inputs}",
            f"model inputs checked {self.model_inputs_checked}  non-finite model inputs "
            f"{self.nonfinite_model_inputs}  fuzzer errors {self.fuzzer_errors}",
            "cases per mutator: "
            + ", ".join(f"{name} {count}" for name, count in sorted(self.mutators.items())),
        ]
        lines.extend(f"FAILED {failure}" for failure in self.failures[:50])
        return "\n".join(lines)


# ------------------------------------------------------------------------------ the checks
def tensor_problems(alert) -> list[str]:
    """What is wrong with the arrays of one yielded ``Alert`` (empty when all is well)."""
    problems = []
    stamps, mask, metadata = alert.stamps, alert.stamp_mask, alert.metadata
    expected = STAMP_SHAPE if len(alert.channels) == 3 else stamps.shape  # own data: its own
    if stamps.ndim != 3 or stamps.shape != expected or stamps.dtype != np.float32:
        problems.append(f"stamps {stamps.dtype}{stamps.shape}")
    elif not np.isfinite(stamps).all():
        problems.append("non-finite stamp pixels")
    if mask.shape != stamps.shape or mask.dtype != bool:
        problems.append(f"mask {mask.dtype}{mask.shape}")
    elif stamps.shape == mask.shape and np.any(stamps[~mask] != 0):
        problems.append("invalid pixels not zeroed")
    if np.isinf(metadata).any():
        problems.append("inf in metadata")
    return problems


def check_file(path: Path, sample: bool, mapping: dict | None = None) -> dict:
    """Reads one fuzz file (``iter_alerts``; own data: ``AlertReader`` with its ``mapping``);
    returns the findings as a JSON-ready dict. Rejections must name the file or its folder."""
    from stampnet.data.alert import RejectionLog, RejectionWarning
    from stampnet.data.readers import iter_alerts

    if mapping is not None:
        from stampnet.data.mapping import DataMapping
        from stampnet.data.own import AlertReader

        read = AlertReader(mapping=DataMapping.from_dict(mapping))
    else:
        read = iter_alerts
    rejections = RejectionLog(warn=False)
    result = {"alerts": 0, "crash": None, "tensors": [], "sample": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectionWarning)
        try:
            for alert in read([str(path)], rejections=rejections):
                result["alerts"] += 1
                result["tensors"].extend(tensor_problems(alert))
                if sample and len(result["sample"]) < 2 and not result["tensors"]:
                    result["sample"].append(_encode_arrays(alert))
        except Exception:  # the finding itself: an exception escaped the reader
            result["crash"] = traceback.format_exc(limit=-3)[-1500:]
    result["rejections"] = len(rejections)
    where = str(path if mapping is None else path.parent)
    named = any(str(rejection.source).startswith(where) for rejection in rejections)
    result["lost"] = result["alerts"] == 0 and not named
    return result


def _encode_arrays(alert) -> dict:
    encoded = {
        name: base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()
        for name, value in (
            ("stamps", alert.stamps.astype(np.float32)),
            ("mask", alert.stamp_mask.astype(np.float32)),
            ("metadata", alert.metadata.astype(np.float64)),
        )
    }
    return {**encoded, "shape": list(alert.stamps.shape)}


def _decode_arrays(encoded: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def array(name, dtype):
        return np.frombuffer(base64.b64decode(encoded[name]), dtype)

    shape = tuple(encoded["shape"])
    return (
        array("stamps", np.float32).reshape(shape),
        array("mask", np.float32).reshape(shape),
        array("metadata", np.float64),
    )


# ---------------------------------------------------------------------------- the worker
def worker_main(ztf_dir: str, seed: int, sample_every: int) -> None:
    """Reads case indices on stdin, answers one JSON line per case on the original stdout."""
    from stampnet.testing.mutators import load_corpus, make_case

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the answers
    corpus = load_corpus(ztf_dir)
    with tempfile.TemporaryDirectory(prefix="stampnet-fuzz-") as scratch:
        answers.write(json.dumps({"ready": len(corpus)}) + "\n")
        answers.flush()
        for line in sys.stdin:
            index = int(line)
            try:
                case = make_case(corpus, seed, index)
            except Exception:  # a bug of the fuzzer itself: reported, not taken for a hang
                error = traceback.format_exc(limit=-2)[-800:]
                answers.write(json.dumps({"making_error": error, "index": index}) + "\n")
                answers.flush()
                continue
            # Making a case (astropy, fastavro) may be slow on a busy machine: the timeout is
            # for the reader alone, so say when reading starts.
            answers.write(json.dumps({"reading": index}) + "\n")
            answers.flush()
            folder = Path(scratch) / f"case{index:06d}"
            folder.mkdir()
            path = folder / case.filename
            path.write_bytes(case.data)
            for name, data in case.extras:
                (folder / name).write_bytes(data)
            sample = sample_every > 0 and index % sample_every == 0
            result = check_file(path, sample=sample, mapping=case.mapping)
            shutil.rmtree(folder)
            result.update(index=index, mutator=case.mutator, seed=case.seed, file=case.filename)
            answers.write(json.dumps(result) + "\n")
            answers.flush()


class _Worker:
    """One worker interpreter and a line reader with a timeout on its answers."""

    def __init__(self, ztf_dir, seed: int, sample_every: int):
        command = [sys.executable, "-m", "stampnet.testing.fuzz", "--worker", str(ztf_dir)]
        command += ["--seed", str(seed), "--sample-every", str(sample_every)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": _pythonpath()},
        )
        self._buffer = b""
        ready = self.answer(timeout=300)
        if ready is None or "ready" not in ready:
            self.close()
            raise RuntimeError(f"fuzz worker did not start (answered {ready!r})")

    def ask(self, index: int, timeout: float) -> tuple[str, dict | None]:
        """(stage, findings) for case ``index``: findings None if the worker hung or died while
        making the case (stage "making") or reading it (stage "reading")."""
        try:
            self.process.stdin.write(f"{index}\n".encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            return "making", None
        made = self.answer(MAKING_TIMEOUT)
        if made is None or "making_error" in made:
            return "making", made
        return "reading", self.answer(timeout)

    def answer(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None  # the worker died
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def _pythonpath() -> str:
    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))


# ------------------------------------------------------------------------------ the runner
def run_fuzz(
    ztf_dir: str | Path,
    cases: int,
    *,
    seed: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    sample_every: int = 25,
    progress=None,
    indices=None,
) -> FuzzReport:
    """Runs ``cases`` mutated inputs through the readers; returns the totals and failures.

    Args:
        ztf_dir: the real sample the seeds come from (``../shared/data/ztf``).
        cases: number of cases (case ``i`` of seed ``s`` is always the same input).
        seed: run seed.
        timeout: seconds a case may take before it counts as a hang.
        sample_every: every n-th case's alerts also go through the model input layers (0: none).
        progress: called with the report every 500 cases (e.g. to print).
        indices: run only these cases (e.g. to replay failures) instead of ``range(cases)``.
    """
    report = FuzzReport()
    started = time.perf_counter()
    samples = []
    worker = _Worker(ztf_dir, seed, sample_every)
    try:
        for index in range(cases) if indices is None else indices:
            stage, result = worker.ask(index, timeout)
            if result is not None and "making_error" in result:
                report.cases += 1
                report.fuzzer_errors += 1
                error = result["making_error"].strip().splitlines()[-1]
                report.failures.append(f"fuzzer error: case {index}: {error}")
                continue
            if result is None:
                code = worker.process.poll()
                kind = "hang" if code is None else "crash"
                report.hangs += kind == "hang"
                report.crashes += kind == "crash"
                report.failures.append(f"{kind}: case {index} while {stage} it (exit code {code})")
                worker.close()
                worker = _Worker(ztf_dir, seed, sample_every)
                report.cases += 1
                continue
            _add(report, result)
            samples.extend({**sample, "index": index} for sample in result["sample"])
            if progress is not None and report.cases % 500 == 0:
                report.seconds = time.perf_counter() - started
                progress(report)
    finally:
        worker.close()
    bad = check_model_inputs(samples)
    report.model_inputs_checked, report.nonfinite_model_inputs = len(samples), len(bad)
    report.failures.extend(f"model inputs: case {index}: {what}" for index, what in bad)
    report.seconds = time.perf_counter() - started
    return report


def _add(report: FuzzReport, result: dict) -> None:
    report.cases += 1
    report.alerts += result["alerts"]
    report.rejections += result["rejections"]
    report.mutators[result["mutator"]] = report.mutators.get(result["mutator"], 0) + 1
    where = f"case {result['index']} ({result['mutator']} of {result['seed']})"
    if result["crash"]:
        report.crashes += 1
        report.failures.append(f"crash: {where}: {result['crash'].strip().splitlines()[-1]}")
    if result["tensors"]:
        report.nonfinite_tensors += 1
        report.failures.append(f"tensors: {where}: {sorted(set(result['tensors']))}")
    if result["lost"]:
        report.lost_inputs += 1
        report.failures.append(f"lost: {where}: no alert and no rejection")


def check_model_inputs(samples: list[dict]) -> list[tuple[int, str]]:
    """(case index, layer) of the sampled alerts whose model inputs hold NaN or inf."""
    if not samples:
        return []
    from stampnet.features import FeatureStats
    from stampnet.layers.preprocessing import FeatureNormalization, StampPreprocessing

    # The ZTF geometry and metadata vector (own data of other shapes: checked in the alert tensors).
    samples = [s for s in samples if tuple(s["shape"]) == STAMP_SHAPE]
    arrays = [_decode_arrays(sample) for sample in samples]
    arrays = [item for item in arrays if item[2].shape == (len(METADATA_FIELDS),)]
    if not arrays:
        return []
    stamps = np.stack([stamp for stamp, _, _ in arrays])
    masks = np.stack([mask for _, mask, _ in arrays])
    metadata = np.stack([values for _, _, values in arrays])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of the sample
        stats = FeatureStats.fit(METADATA_FIELDS, metadata)
    present = np.isfinite(metadata)
    raw_features = np.where(present, metadata, np.nan).astype(np.float32)
    outputs = {
        "minmax stamps": StampPreprocessing(crop_size=21, normalisation="minmax")(stamps, masks),
        "standardized stamps": StampPreprocessing(crop_size=63, normalisation="standardize")(
            stamps, masks
        ),
        "features": FeatureNormalization(stats)(raw_features),
    }
    bad = {}
    for layer, output in outputs.items():
        values = np.asarray(output).reshape(len(samples), -1)
        for row in np.flatnonzero(~np.isfinite(values).all(axis=1)):
            bad.setdefault(samples[row]["index"], []).append(layer)
    return [(index, ", ".join(layers)) for index, layers in sorted(bad.items())]


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", metavar="ZTF_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-every", type=int, default=25)
    args = parser.parse_args(argv)
    worker_main(args.worker, args.seed, args.sample_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
