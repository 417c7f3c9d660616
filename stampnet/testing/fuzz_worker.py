"""The fuzzer's worker interpreter: makes each case, reads it, answers its findings.

A separate interpreter, so that a hang is cut off by a per-case timeout and a hard crash is seen as
the worker dying. Worker and parent talk in JSON lines over pipes (no pickle): the parent
(``Worker``, used by ``stampnet.testing.fuzz.run_fuzz``) sends case indices, the worker
(``python -m stampnet.testing.fuzz_worker``) rebuilds each case from ``(seed, index)`` and answers
with its findings (``stampnet.testing.fuzz_checks.check_file``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from stampnet.testing.fuzz_checks import check_file

#: Seconds the worker may take to make a case (up to a few seconds on a busy machine).
MAKING_TIMEOUT = 300.0


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


class Worker:
    """One worker interpreter and a line reader with a timeout on its answers."""

    def __init__(self, ztf_dir, seed: int, sample_every: int):
        command = [sys.executable, "-m", "stampnet.testing.fuzz_worker", "--worker", str(ztf_dir)]
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
