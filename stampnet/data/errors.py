"""Which exceptions mean "this input is corrupt" (a rejection) and which are bugs (raised).

The decoders stampnet uses raise many unrelated types on corrupt bytes: zlib and gzip
(``zlib.error``, ``EOFError``, ``gzip.BadGzipFile``), tarfile (``TarError``), fastavro
(``EOFError``, ``UnicodeDecodeError``, ``IndexError`` for an out-of-range union branch, its schema
errors),
cramjam's snappy (``DecompressionError``), pyarrow (``ArrowInvalid``, ``ArrowIOError``), astropy
(``OSError``, ``VerifyError``, warnings raised as errors). Those are caught and turn a file or
packet into a rejection. Anything else (``NameError``, ``AttributeError``, ``MemoryError``,
``RecursionError``, an assertion) is a bug or a resource problem, not bad data: it surfaces.
"""

from __future__ import annotations

import struct
import tarfile
import zlib

import cramjam
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException

#: Raised by Python's and the decoders' parsers on corrupt or malformed input.
CORRUPT_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # also UnicodeDecodeError, JSONDecodeError, AlertError, ArrowInvalid, UnknownType
    TypeError,  # a record field of the wrong type (e.g. bytes where a record was expected)
    KeyError,  # a record without a field the schema or header requires
    IndexError,  # an out-of-range union branch or offset
    OverflowError,  # absurd sizes read from a header
    EOFError,  # truncated gzip, Avro or tar data
    struct.error,
    zlib.error,
    OSError,  # gzip.BadGzipFile, pyarrow's ArrowIOError, astropy on malformed FITS
    tarfile.TarError,
    cramjam.DecompressionError,
    SchemaParseException,
    SchemaResolutionError,
)


def parquet_errors() -> tuple[type[BaseException], ...]:
    """``CORRUPT_INPUT_ERRORS`` plus pyarrow's own (not its ``ArrowMemoryError``)."""
    import pyarrow.lib

    return (
        *CORRUPT_INPUT_ERRORS,
        pyarrow.lib.ArrowNotImplementedError,  # an encoding or type a corrupt footer names
        pyarrow.lib.ArrowSerializationError,
        pyarrow.lib.ArrowCapacityError,
    )


def own_data_errors() -> tuple[type[BaseException], ...]:
    """``parquet_errors`` plus what corrupt npz (``zipfile``), pickle and HDF5 files raise (h5py
    raises ``OSError``/``KeyError``/``ValueError``, already included)."""
    import pickle
    import zipfile

    return (*parquet_errors(), zipfile.BadZipFile, pickle.UnpicklingError)
