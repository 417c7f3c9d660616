"""Mutations of real alert files: the inputs of the fuzzer (``stampnet.testing.fuzz``).

The corpus (``stampnet.testing.corpus.load_corpus``) holds a few real files of each input kind
(``avro``: single- and multi-record Avro containers of both writer schemas; ``tar``: ZTF-archive
tarballs; ``parquet``: Fink rows; own data), decoded once. ``make_case(corpus, seed, index)``
turns one of them into a damaged file, deterministically from ``(seed, index)``, with one mutator
of that kind:

- byte mutators (every kind; ``byte_mutators``): truncation, bit flips, zeroed ranges, garbage,
  empty files;
- packet mutators (``packet_mutators``: Avro records, tar members, parquet rows): decode the
  record, damage a cutout (corrupt gzip, broken FITS header or data, other shapes and BITPIX,
  missing stamps) or a field (NaN, inf, extremes, null, wrong types), and re-encode with the
  packet's own schema;
- container mutators (``packet_mutators``): tarballs with foreign, empty or duplicated members,
  links and directories;
- own-data mutators (``own_data_mutators``: the same real alerts exported by ``stampnet export``
  as Deep-HiTS ``.npz``, HDF5, BTSbot ``.npy`` + CSV and ALeRCE-style parquet tables, read back
  with their mapping): odd pixel values, wrong dtypes and shapes, rows missing from one array,
  deleted keys, null and non-finite cells, corrupt cutout bytes, broken CSV lines.

A new input kind plugs in with a seed loader in ``stampnet.testing.corpus`` (real files ->
``Seed``) and ``@mutator(kind)`` functions (``byte_mutators.mutator``); ``make_case`` picks among
the mutators registered for a seed's kind.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Importing the mutator modules registers them: the byte mutators first, then the structured ones
# in a fixed order, which the cases of a seed depend on.
from stampnet.testing import own_data_mutators, packet_mutators  # noqa: F401 (registration)
from stampnet.testing.byte_mutators import (
    BYTE_MUTATORS,
    MUTATORS,
    ReplaceExtras,
    Unencodable,
)
from stampnet.testing.corpus import Seed, load_corpus

__all__ = ["MUTATORS", "Case", "Seed", "load_corpus", "make_case"]


@dataclasses.dataclass(frozen=True)
class Case:
    """One fuzz input: a file name (its suffix tells the kind) and its bytes."""

    index: int
    mutator: str
    seed: str
    filename: str
    data: bytes
    extras: tuple = ()
    mapping: dict | None = None


SUFFIXES = {"avro": ".avro", "tar": ".tar.gz", "parquet": ".parquet"}


def make_case(corpus: list[Seed], seed: int, index: int) -> Case:
    """The ``index``-th case of run ``seed``: a random seed file and one of its mutators."""
    rng = np.random.default_rng([seed, index])
    chosen = corpus[int(rng.integers(len(corpus)))]
    # Half the cases damage the content (packets, members), half the raw bytes.
    structured = [m for m in MUTATORS[chosen.kind] if m not in BYTE_MUTATORS]
    mutators = structured if structured and rng.random() < 0.5 else BYTE_MUTATORS
    function = mutators[int(rng.integers(len(mutators)))]
    label = function.__name__
    extras = chosen.extras
    try:
        data = function(rng, chosen)
    except ReplaceExtras as replaced:
        data, extras = replaced.data, replaced.extras
    except Unencodable:  # e.g. null in a field its schema does not allow: damage the bytes
        function = BYTE_MUTATORS[int(rng.integers(len(BYTE_MUTATORS)))]
        label = f"{label}>{function.__name__}"
        data = function(rng, chosen)
    if chosen.mapping is not None:  # own data: the exported names, which the mapping expects
        name = chosen.name.split("/")[-1]
    else:
        name = f"case{index:06d}_{function.__name__}{SUFFIXES[chosen.kind]}"
    return Case(index, label, chosen.name, name, data, extras, chosen.mapping)
