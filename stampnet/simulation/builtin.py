"""The built-in dataset: simulated alerts, built once into ``<data_root>/builtin/``.

``python train.py`` with no ``--data`` trains on it, so stampnet runs on a fresh machine with no
download. The dataset card's ``generator`` records the simulator version, size, seed and
difficulty, and a digest of the simulator's source; a card that does not match (a newer or edited
simulator, another size) triggers a rebuild. One process builds at a time (a lock file beside the
data): the workers of a cluster job, or two commands started together on a fresh clone, wait for
the first one's build and use it, instead of writing the same files at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from stampnet.simulation.simulate import SIMULATOR_VERSION, simulate

#: Objects per size (balanced over the five classes; ~6 alerts per object on average).
#: "default" trains the sequence models on CPU in minutes; "tiny" is for tests.
SIZES = {"default": 1000, "tiny": 60}
DEFAULT_DIFFICULTY = 0.5


def _num_objects(size) -> int:
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)} or an int, received {size!r}")
        return SIZES[size]
    if isinstance(size, bool) or not isinstance(size, int) or size < 5:
        raise ValueError(f"size must be one of {sorted(SIZES)} or an int >= 5, received {size!r}")
    return size


def source_digest(folder: Path = Path(__file__).parent) -> str:
    """Short SHA-256 of the simulator's source (``*.py`` of ``folder``, by name).

    Part of the cache key beside ``SIMULATOR_VERSION``: a change to the simulator that forgot to
    bump the version still rebuilds the built-in data instead of silently reusing the old alerts.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def generator_tag(num_objects: int, seed: int, difficulty: float) -> str:
    """What the card's ``generator`` says about a built-in dataset (also its cache key)."""
    return (
        f"stampnet.simulation {SIMULATOR_VERSION} source={source_digest()} "
        f"objects={num_objects} seed={seed} difficulty={difficulty}"
    )


def builtin_dir(data_root="tfrecords", size="default") -> Path:
    name = "builtin" if size == "default" else f"builtin-{size}"
    return Path(data_root) / name


def ensure_builtin_dataset(
    data_root="tfrecords", size="default", seed: int = 0, difficulty: float = DEFAULT_DIFFICULTY
) -> Path:
    """Returns the data directory of the built-in dataset, simulating and building it if needed.

    Args:
        data_root: folder holding datasets (``tfrecords``).
        size: "default" (1,000 objects), "tiny" (60, for tests) or a number of objects.
        seed: simulator and split seed.
        difficulty: the simulator's difficulty in [0, 1].
    """
    num_objects = _num_objects(size)
    data_dir = builtin_dir(data_root, size)
    tag = generator_tag(num_objects, seed, difficulty)
    if _is_built(data_dir, tag):
        return data_dir
    with _build_lock(data_dir):
        if _is_built(data_dir, tag):  # another process built it while this one waited
            return data_dir
        _build(data_dir, tag, num_objects, seed, difficulty)
    return data_dir


def _is_built(data_dir: Path, tag: str) -> bool:
    """Whether ``data_dir`` holds this simulation, built with everything this code reads from a
    card: a card written before the train statistics of ``--no-match-as missing`` existed is
    rebuilt rather than refused (the built-in data are the package's to manage)."""
    from stampnet.data.card import FEATURE_STATS_KEYS, load_card

    try:
        card = load_card(data_dir)
    except (FileNotFoundError, ValueError):
        return False  # not built yet, interrupted, or unreadable: build it
    return card.get("generator") == tag and all(key in card for key in FEATURE_STATS_KEYS.values())


@contextlib.contextmanager
def _build_lock(data_dir: Path):
    """Holds ``.<name>.lock`` beside ``data_dir`` exclusively (``flock``: released if the
    process dies; on NFS, Linux maps it to a POSIX lock the server sees)."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(data_dir.parent / f".{data_dir.name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"built-in data: waiting for another process building {data_dir} ...", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(data_dir: Path, tag: str, num_objects: int, seed: int, difficulty: float) -> None:
    import tensorflow_datasets as tfds

    from stampnet.data.build import build_dataset

    # The raw alerts (~75 kB each) are only needed while building: simulate to a scratch folder.
    scratch = Path(tempfile.mkdtemp(prefix=".builtin-alerts-", dir=data_dir.parent))
    print(
        f"built-in data: simulating {num_objects} objects and building {data_dir} "
        "(first run only) ...",
        flush=True,
    )
    started = time.perf_counter()
    # One line for the whole stage: TFDS's per-split progress bars are off while it builds.
    tfds.display_progress_bar(False)
    try:
        summary = simulate(scratch, num_objects=num_objects, seed=seed, difficulty=difficulty)
        card = build_dataset(
            scratch / "alerts",
            data_dir,
            labels=summary["labels"],
            seed=seed,
            generator=tag,
            overwrite=True,
        )
    finally:
        tfds.display_progress_bar(True)
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"built-in data: {card.get('num_alerts')} alerts of {card.get('num_objects')} objects, "
        f"classes {', '.join(card['class_names'])} ({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
