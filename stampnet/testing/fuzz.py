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

The worker and its JSON-lines protocol are in ``stampnet.testing.fuzz_worker``, the checks in
``stampnet.testing.fuzz_checks``; this module runs the cases and adds up the findings.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from stampnet.testing.fuzz_checks import check_model_inputs
from stampnet.testing.fuzz_worker import Worker

#: Seconds reading one case may take before it counts as a hang (it takes ~10-50 ms).
DEFAULT_TIMEOUT = 20.0


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
    worker = Worker(ztf_dir, seed, sample_every)
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
                worker = Worker(ztf_dir, seed, sample_every)
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
