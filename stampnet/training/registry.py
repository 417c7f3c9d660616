"""Model name -> ``ModelSpec``, imported lazily so that ``--help`` and one model never pay for the
others (or break when another model's module does not import).

Each entry is ``"module:ATTRIBUTE"``; the attribute is a ``stampnet.training.spec.ModelSpec``.
A new model is one line here plus its spec module under ``stampnet/training/specs/``.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from stampnet.training.spec import ModelSpec

_SPECS = "stampnet.training.specs"

#: model name -> "module:ATTRIBUTE" of its ModelSpec.
REGISTRY: dict[str, str] = {
    "stamp_classifier": f"{_SPECS}.stamp_classifier:SPEC",
    "deep_hits": f"{_SPECS}.deep_hits:SPEC",
    "cae": f"{_SPECS}.autoencoders:CAE",
    "vae": f"{_SPECS}.autoencoders:VAE",
    "vade": f"{_SPECS}.autoencoders:VADE",
    "latent_classifier": f"{_SPECS}.autoencoders:LATENT_CLASSIFIER",
    "seq_classifier": f"{_SPECS}.sequences:SEQ_CLASSIFIER",
    "seq_vae": f"{_SPECS}.sequences:SEQ_VAE",
}


def model_names() -> list[str]:
    return list(REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The ``ModelSpec`` registered as ``name``; a clear error for unknown or missing models."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown model {name!r}; expected one of {model_names()}")
    from stampnet.training.spec import ModelSpec

    module_name, _, attribute = REGISTRY[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise ValueError(
            f"Model {name!r} is registered but its module {module_name} is not installed yet"
        ) from error
    spec = getattr(module, attribute, None)
    if not isinstance(spec, ModelSpec):
        raise ValueError(
            f"Model {name!r}: {module_name}.{attribute} must be a ModelSpec, "
            f"received {type(spec).__name__}"
        )
    if spec.name != name:
        raise ValueError(f"Model {name!r}: its ModelSpec is named {spec.name!r}")
    return spec
