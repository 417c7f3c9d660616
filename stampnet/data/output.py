"""Where a build writes: checked up front, written aside, swapped in whole, resumable.

A build of ``tfrecords/ztf_sample`` never writes into that directory. It writes the TFRecords and
the card into the sibling ``tfrecords/.ztf_sample.partial`` and stages decoded alerts in
``tfrecords/.ztf_sample.staging`` (or under ``--scratch-dir``); only when the card is written is the
partial directory renamed into place. So:

- a killed or failed build leaves any earlier dataset exactly as it was, and never leaves a
  directory that looks finished (``ztf_sample`` only ever appears complete, with its card);
- the staging survives a kill, and the next build of the same sources resumes it
  (``stampnet.data.staging``); it is deleted once the new dataset is in place;
- a read-only location or a disk too small for the estimated output fails before anything is
  read or written, with a message that says what to change.

Replacing an earlier dataset (``--overwrite``) takes two renames: the old one to
``.ztf_sample.previous``, the new one into place. A kill between them leaves no ``ztf_sample``;
the next build first puts ``.ztf_sample.previous`` back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from stampnet.data import card as card_lib
from stampnet.data.alert import REJECTIONS_FILE

#: Bytes a build needs per byte of (compressed) input. The real sample (90 MB) gave 231 MB of
#: TFRecords and 120 MB of staging (3.9x), plus TFDS' shuffle buckets while a split is written:
#: 6x leaves a margin.
BYTES_PER_INPUT_BYTE = 6.0
#: Entries a build writes in its data directory; anything else there is not ours to replace.
BUILD_ENTRIES = frozenset(
    {"ztf_alerts", card_lib.CARD_NAME, f".{card_lib.CARD_NAME}.tmp", REJECTIONS_FILE}
)


@dataclasses.dataclass(frozen=True)
class BuildPaths:
    """The directories of one build of ``data_dir``."""

    data_dir: Path
    partial: Path
    staging: Path
    previous: Path


@contextlib.contextmanager
def building(data_dir, files: list[Path], *, overwrite: bool, scratch_dir=None):
    """``prepare``, yield the ``BuildPaths`` to write to, then ``publish`` if nothing failed.

    On failure the partial directory is removed (TFRecords are rewritten by the next build), and
    the staging and any earlier dataset are kept.
    """
    paths = build_paths(data_dir, scratch_dir)
    prepare(paths, files, overwrite)
    try:
        yield paths
    except BaseException:
        shutil.rmtree(paths.partial, ignore_errors=True)
        raise
    publish(paths)


def staging_summary(staging) -> dict:
    """What the card records of the staging: files read now, and taken over from a killed build."""
    return {"files_staged": staging.files_staged, "files_resumed": staging.files_resumed}


def build_paths(data_dir: str | Path, scratch_dir: str | Path | None = None) -> BuildPaths:
    data_dir = Path(data_dir).absolute()
    if scratch_dir is None:
        staging = data_dir.with_name(f".{data_dir.name}.staging")
    else:  # one staging per output, so that two builds sharing a scratch dir do not collide
        digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
        staging = Path(scratch_dir).absolute() / f"stampnet-staging-{data_dir.name}-{digest}"
    return BuildPaths(
        data_dir=data_dir,
        partial=data_dir.with_name(f".{data_dir.name}.partial"),
        staging=staging,
        previous=data_dir.with_name(f".{data_dir.name}.previous"),
    )


def prepare(paths: BuildPaths, files: list[Path], overwrite: bool) -> None:
    """Checks that the build may and can run, then gives it an empty partial directory.

    Raises:
        FileExistsError: ``data_dir`` holds a finished dataset and ``overwrite`` is False, or
            holds files that are not a dataset's.
        PermissionError: a directory the build writes to is not writable.
        OSError: (ENOSPC) the estimated output does not fit on the disk.
    """
    _restore_previous(paths)
    data_dir = paths.data_dir
    if card_lib.card_path(data_dir).exists() and not overwrite:
        raise FileExistsError(
            f"{data_dir} already holds a finished dataset ({card_lib.CARD_NAME}); pass "
            "overwrite=True (`stampnet build --overwrite`) or choose another --out."
        )
    if data_dir.exists() and not card_lib.card_path(data_dir).exists():
        foreign = sorted(
            entry.name for entry in data_dir.iterdir() if entry.name not in BUILD_ENTRIES
        )
        if foreign:
            raise FileExistsError(
                f"{data_dir} is not empty and holds no dataset ({', '.join(foreign[:5])}); "
                "choose another --out, or remove those files."
            )
    for directory in (paths.partial.parent, paths.staging.parent):
        check_writable(directory)
    check_free_space(paths, files)
    shutil.rmtree(paths.partial, ignore_errors=True)
    paths.partial.mkdir(parents=True)


def check_writable(directory: Path) -> None:
    """Creates and removes a file in ``directory`` (its nearest existing ancestor): the only
    test that also holds for root, read-only mounts and network file systems."""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".stampnet-probe-"):
            pass
    except OSError as error:
        raise PermissionError(
            error.errno,
            f"Cannot write in {existing} ({error.strerror}): a build writes its dataset and "
            f"staging there. Choose a writable --out (and --scratch-dir), or fix the permissions.",
        ) from None


def free_bytes(directory: Path) -> int:
    """Bytes free for this user on the file system of ``directory`` (nearest existing ancestor)."""
    while not directory.exists():
        directory = directory.parent
    return shutil.disk_usage(directory).free


def check_free_space(paths: BuildPaths, files: list[Path]) -> None:
    """Estimates the build's disk use from its input size and refuses a build that won't fit."""
    input_bytes = sum(path.stat().st_size for path in files)
    needed = int(BYTES_PER_INPUT_BYTE * input_bytes) - _size(paths.staging) - _size(paths.partial)
    free = free_bytes(paths.partial.parent)
    if needed > free:
        raise OSError(
            28,  # ENOSPC
            f"Not enough disk space to build {paths.data_dir}: about {needed / 1e6:.0f} MB "
            f"needed ({BYTES_PER_INPUT_BYTE:g} x the {input_bytes / 1e6:.0f} MB of input), "
            f"{free / 1e6:.0f} MB free on {paths.partial.parent}. Free space, or choose "
            "another --out / --scratch-dir. Nothing was written.",
        )


def _size(directory: Path) -> int:
    if not directory.exists():
        return 0
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def publish(paths: BuildPaths) -> None:
    """Moves the finished partial directory into place; the earlier dataset goes only after."""
    if not card_lib.card_path(paths.partial).is_file():
        raise RuntimeError(f"{paths.partial} has no dataset card: refusing to publish it")
    shutil.rmtree(paths.previous, ignore_errors=True)
    if paths.data_dir.exists():
        os.rename(paths.data_dir, paths.previous)
    os.rename(paths.partial, paths.data_dir)
    shutil.rmtree(paths.previous, ignore_errors=True)
    shutil.rmtree(paths.staging, ignore_errors=True)


def _restore_previous(paths: BuildPaths) -> None:
    """Undoes a replacement that was killed between its two renames."""
    if paths.previous.exists() and not paths.data_dir.exists():
        os.rename(paths.previous, paths.data_dir)
    else:
        shutil.rmtree(paths.previous, ignore_errors=True)
