"""Closes a race in the Beam DirectRunner's data plane that dropped records without an error.

The DirectRunner runs Beam's ``FnApiRunner``, which sends every bundle's input to its SDK
workers through a ``data_plane.TimeBasedBufferingClosableOutputStream`` (its data servicer builds
them with ``worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 1000``). A thread of that stream flushes
it once a second: under ``_flush_lock`` it takes the buffered bytes (``get``), hands them to the
gRPC send queue and then empties the buffer (``_clear``). ``write`` takes no lock, so bytes the
runner writes between the take and the clear are cleared unsent: the worker never sees those
records, and nothing fails. The runner writes a bundle's whole input and then closes the stream,
so the flush only fires when that takes longer than a second: large inputs on a loaded machine.
The ``multi_processing`` and ``multi_threading`` running modes have the stream, ``in_memory``
has not. Multi-process SDK workers flush their own streams by size only (no thread); the
in-process workers of ``multi_threading`` flush by time too and also write through methods the
guard below does not cover, so stampnet runs ``multi_processing``.

Measured with Beam 2.77 on the whole shared sample (``build_dataset_beam``, multi-process, 1 or
2 workers, 0-2 busy loops beside it, load 3-33 on 2 cores), with the runner's counts of what each
stage's workers produced and read: 2 of the 9 unguarded builds lost records (2 were stopped at
a 25-minute limit, at load ~30, after their first pipeline), both in the object lists (1,806
elements, 124 MB) on their way to the next stage, which read 1,355 and 1,356. In
the second, the runner wrote 63,339,500 and 60,775,729 bytes to the two workers, its flush
cleared 21,029,408 and 10,004,504 of them unsent, and the workers read exactly the rest (611 of
909 and 745 of 897 elements). No bundle was split and no residual was deferred in any build (the
runner asks for splits only under ``--direct_test_splits``), so Beam's ``GroupingBuffer.extend``
dropping a split's residual, the other suspect, never ran. The losses of rounds 3 and 4 were in
the same kind of place: the largest stage inputs (the object lists, and the shard groups of the
largest split in TFDS' writer). With the guard, 3 builds under the same load: the flush fired
19 times while the runner wrote, nothing was lost, 2 builds ran to the end and passed
``check_complete`` (the third was stopped at the limit after its first pipeline, complete).
``benchmarks/beam_race.py`` reproduces the race in a small pipeline (a 1 ms flush): 140 of 400
elements arrived unguarded, 400 of 400 guarded.

``guard_runner_writes`` makes ``write`` take the same lock, so a write waits for a flush in progress
and a flush takes every byte written before it. It changes Beam's class for the whole process
(idempotent), and nothing else: the chunks, their order and the send queue's back-pressure stay
Beam's. With another runner (Dataflow, Flink, Spark) the runner is not in this process and the
guard changes nothing there. ``beam_summary.check_complete`` still fails any build whose counts do
not add up.
"""

from __future__ import annotations

#: Set on the guarded ``write`` so that guarding twice wraps once.
_GUARD_MARK = "_stampnet_waits_for_flush"


def _stream_class():
    """Beam's time-based output stream, or None without Beam (or with a Beam that lacks it)."""
    try:
        from apache_beam.runners.worker import data_plane
    except ImportError:
        return None
    return getattr(data_plane, "TimeBasedBufferingClosableOutputStream", None)


def runner_writes_guarded() -> bool:
    """Whether the stream's ``write`` waits for its flushes in this process."""
    stream = _stream_class()
    return stream is not None and getattr(stream.write, _GUARD_MARK, False)


def guard_runner_writes() -> bool:
    """Makes ``TimeBasedBufferingClosableOutputStream.write`` hold the stream's ``_flush_lock``
    (the module doc says why). Returns False when Beam has no such stream, True otherwise."""
    stream = _stream_class()
    if stream is None:
        return False
    if runner_writes_guarded():
        return True
    unguarded = stream.write

    def write(self, data, nested=False):
        with self._flush_lock:
            unguarded(self, data, nested)

    setattr(write, _GUARD_MARK, True)
    stream.write = write
    return True
