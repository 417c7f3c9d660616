"""The mutator registry (``@mutator(kind)``) and the mutators that damage any file's raw bytes.

Every seed kind (``stampnet.testing.corpus``) gets the byte mutators: truncation, bit flips,
zeroed ranges, garbage, empty files. The structure-aware mutators of
``stampnet.testing.packet_mutators`` and ``stampnet.testing.own_data_mutators`` register here too.
"""

from __future__ import annotations

from collections.abc import Callable

from stampnet.testing.corpus import OWN_LAYOUTS, Seed


class Unencodable(ValueError):
    """A mutated record that its schema cannot encode; the case falls back to a byte mutator."""


class ReplaceExtras(Exception):  # noqa: N818 (a result, not an error)
    """Raised by a mutator that changes a case's extra files: (main bytes, extras)."""

    def __init__(self, data: bytes, extras: tuple):
        super().__init__("extras replaced")
        self.data, self.extras = data, extras


MUTATORS: dict[str, list[Callable]] = {}
BYTE_KINDS = ("avro", "tar", "parquet", *OWN_LAYOUTS.values())


def mutator(*kinds: str):
    """Registers ``function(rng, seed) -> bytes`` as a mutator of the seeds of ``kinds``."""

    def register(function):
        for kind in kinds:
            MUTATORS.setdefault(kind, []).append(function)
        return function

    return register


@mutator(*BYTE_KINDS)
def truncate(rng, seed: Seed) -> bytes:
    return seed.data[: int(rng.integers(0, len(seed.data)))]


@mutator(*BYTE_KINDS)
def flip_bits(rng, seed: Seed) -> bytes:
    data = bytearray(seed.data)
    for position in rng.integers(0, len(data) * 8, size=int(rng.integers(1, 64))):
        data[position // 8] ^= 1 << (position % 8)
    return bytes(data)


@mutator(*BYTE_KINDS)
def zero_range(rng, seed: Seed) -> bytes:
    start = int(rng.integers(0, len(seed.data)))
    stop = min(len(seed.data), start + int(rng.integers(1, 4096)))
    return seed.data[:start] + bytes(stop - start) + seed.data[stop:]


@mutator(*BYTE_KINDS)
def garbage(rng, seed: Seed) -> bytes:
    start = int(rng.integers(0, len(seed.data)))
    noise = rng.bytes(int(rng.integers(1, 2048)))
    if rng.random() < 0.5:  # overwrite
        return seed.data[:start] + noise + seed.data[start + len(noise) :]
    return seed.data[:start] + noise + seed.data[start:]  # insert


@mutator(*BYTE_KINDS)
def keep_magic_only(rng, seed: Seed) -> bytes:
    return seed.data[: int(rng.integers(0, 9))]


BYTE_MUTATORS = (truncate, flip_bits, zero_range, garbage, keep_magic_only)
