"""Which files hold alert packets, and in what format: told by their first bytes, not by name.

``resolve_sources`` expands what a user passes (a file, a directory searched recursively, a glob,
or a list of these) into sorted paths; ``file_format`` says whether a file is an Avro container,
a (gzip) tarball or a parquet file. ``stampnet.data.readers`` reads them.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from stampnet.data.avro import AVRO_MAGIC
from stampnet.data.fits import GZIP_MAGIC

PARQUET_MAGIC = b"PAR1"
#: Files in a directory with one of these suffixes are alert files even if their bytes say not.
DATA_SUFFIXES = (".avro", ".parquet", ".tar.gz", ".tgz", ".tar")


def file_format(path: Path) -> str | None:
    with open(path, "rb") as handle:
        head = handle.read(262)
    if head.startswith(AVRO_MAGIC):
        return "avro"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(GZIP_MAGIC) or head[257:262] == b"ustar":
        return "tar"
    return None


def resolve_sources(sources) -> list[Path]:
    """Expands a path, directory (recursive), glob, or list of these into sorted file paths.

    Raises:
        FileNotFoundError: a source matches no file.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    paths: dict[Path, None] = {}
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = [
                item
                for item in sorted(path.rglob("*"))
                if item.is_file() and in_directory_scan(item.relative_to(path), item)
            ]
        elif path.is_file():
            found = [path]
        else:
            found = [Path(item) for item in sorted(glob.glob(str(source), recursive=True))]
            found = [item for item in found if item.is_file()]
            if not found:
                raise FileNotFoundError(f"alert source {str(source)!r} matches no file")
        paths.update(dict.fromkeys(found))
    return list(paths)


def in_directory_scan(relative: Path, path: Path) -> bool:
    # Inside directories, READMEs, label CSVs and Spark's _SUCCESS/.crc files are not alert data:
    # skip hidden files and files that look like alert data neither by their bytes nor by name.
    if any(part.startswith((".", "_")) for part in relative.parts):
        return False
    try:
        return path.name.endswith(DATA_SUFFIXES) or file_format(path) is not None
    except OSError:
        return True  # unreadable: let the reader report it
