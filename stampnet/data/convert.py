"""One-time conversion of pickled stamp chunks to a safe format: ``stampnet convert``.

Deep-HiTS' chunks are Python 2 pickles of dicts of arrays. Unpickling runs whatever code a file
holds, so stampnet reads them only with ``--allow-pickle``; converting them once, here, gives
``.npz`` (or HDF5) files with the same keys, which ``stampnet build --preset deep-hits`` reads
with no pickle involved. Folders are kept (``train/``, ``validation/``, ``test/`` name splits).

Example:
    stampnet convert --source deep_hits/ --out deep_hits_npz/ --format npz
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from stampnet.data.chunks import ArrayDict, own_format
from stampnet.data.own import PickleWarning

FORMATS = ("npz", "hdf5")


def _safe(value, key: str, path: Path) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == object:
        try:  # Python 2 str / unicode arrays unpickle as objects: store them as text
            return np.array([_text(item) for item in array.reshape(-1)]).reshape(array.shape)
        except TypeError:
            raise ValueError(f"{path}: key {key!r} holds Python objects, not arrays") from None
    return array


def _text(item) -> str:
    if isinstance(item, bytes):
        return item.decode("latin1")
    if isinstance(item, str):
        return item
    raise TypeError(type(item).__name__)


def _pickles(source: Path) -> list[tuple[Path, Path]]:
    """(file, path relative to the source root) of every pickled file under ``source``."""
    if source.is_file():
        return [(source, Path(source.name))]
    found = []
    for path in sorted(source.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                if own_format(path, handle.read(8)) == "pickle":
                    found.append((path, path.relative_to(source)))
    return found


def convert_pickles(sources, out_dir: str | Path, fmt: str = "npz", compress: bool = False) -> list:
    """Converts every pickled chunk of ``sources`` to ``fmt`` under ``out_dir``; returns the
    files written. Warns once (``PickleWarning``): only convert files you trust."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, received {fmt!r}")
    if isinstance(sources, str | Path):
        sources = [sources]
    pairs = [pair for source in sources for pair in _pickles(Path(source))]
    if not pairs:
        raise FileNotFoundError(f"no pickled file in {list(map(str, sources))}")
    warnings.warn(
        f"Unpickling {len(pairs)} file(s) to convert them: this runs any code they hold; "
        "convert only files you trust.",
        PickleWarning,
        stacklevel=2,
    )
    out_dir = Path(out_dir)
    written = []
    for path, relative in pairs:
        arrays = ArrayDict.from_pickle(path).arrays
        arrays = {key: _safe(value, key, path) for key, value in arrays.items()}
        target = out_dir / relative.with_suffix(".npz" if fmt == "npz" else ".h5")
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "npz":
            (np.savez_compressed if compress else np.savez)(target, **arrays)
        else:
            import h5py

            with h5py.File(target, "w") as handle:
                for key, value in arrays.items():
                    if value.dtype.kind == "U":
                        handle.create_dataset(key, data=value.tolist(), dtype=h5py.string_dtype())
                    else:
                        handle.create_dataset(
                            key, data=value, compression="gzip" if compress else None
                        )
        written.append(target)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", required=True, help="pickled chunk or dir")
    parser.add_argument("--out", required=True, help="directory to write (folders are kept)")
    parser.add_argument("--format", choices=FORMATS, default="npz")
    parser.add_argument("--compress", action="store_true", help="zip-deflate / gzip the arrays")


def run(args: argparse.Namespace) -> int:
    written = convert_pickles(args.source, args.out, args.format, args.compress)
    print(f"Converted {len(written)} pickled file(s) to {args.format} under {args.out}")
    return 0
