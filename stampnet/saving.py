"""Loading saved stampnet models, whatever they hold.

A ``.keras`` file names its custom classes (``stampnet>StampPreprocessing``, ...); Keras can only
rebuild them once the modules that register them are imported. ``load_model`` imports them all
first, so a run folder, an imported ALeRCE model or a user's own file load the same way.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path


@functools.cache
def register_stampnet_objects() -> None:
    """Imports every stampnet layer, loss and model module (each registers its classes)."""
    import stampnet.layers
    import stampnet.losses
    import stampnet.models

    for package in (stampnet.layers, stampnet.losses, stampnet.models):
        for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)


def load_model(path: str | Path, *, compile: bool = False):
    """``keras.saving.load_model`` with every stampnet class registered; a clear error if the
    file is missing.

    Always in Keras' safe mode: a file that carries code (a ``Lambda`` layer's pickled bytecode)
    is refused rather than run. stampnet's own models use no ``Lambda`` layer, so none needs it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No saved model at {path}: expected a .keras file")
    import keras

    register_stampnet_objects()
    return keras.saving.load_model(path, compile=compile, safe_mode=True)
