"""Command-line flags generated from the configuration dataclasses (``stampnet.training.config``).

One flag per field (``--data``, ``--batch-size``, ...; a field's ``flag`` metadata names it when
the field name would not), with the field's ``help`` as its help text. A flag that is not given
leaves the preset's value (``argparse.SUPPRESS``), so ``overrides_from_args`` returns only what
the user asked for, ready for ``config.apply_overrides``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from typing import Any

from stampnet.training.config import SECTIONS


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _field_type(section_class, field: dataclasses.Field):
    """The non-None type of a field annotation (``int | None`` -> int)."""
    hint = typing.get_type_hints(section_class)[field.name]
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return args[0]
    return typing.get_origin(hint) or hint


def _parse_channels(text: str) -> tuple[str, ...]:
    """Distinct channel names; that the data has them is checked against its card."""
    channels = tuple(name.strip() for name in text.split(",") if name.strip())
    if not channels or len(set(channels)) != len(channels):
        raise argparse.ArgumentTypeError(
            "--channels expects distinct comma-separated channel names of the dataset card "
            f"(ZTF: science,template,difference), got {text!r}"
        )
    return channels


def _parse_option(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"--option expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one flag per config field; an unset flag leaves the preset (dest: section.field)."""
    for section, section_class in SECTIONS.items():
        group = parser.add_argument_group(
            section_class.__name__,
            f"{section_class.__doc__} Base defaults are shown; a model's preset may differ "
            "(--show-config prints the resolved configuration).",
        )
        for field in dataclasses.fields(section_class):
            default = (
                field.default_factory()
                if field.default_factory is not dataclasses.MISSING
                else field.default
            )
            help_text = f"{field.metadata['help']} (base default: {default!r})"
            kind = _field_type(section_class, field)
            kwargs = {"dest": f"{section}.{field.name}", "default": argparse.SUPPRESS}
            if kind is not bool and field.name != "options" and not field.metadata["choices"]:
                kwargs["metavar"] = field.name.upper()
            if field.metadata.get("choices"):
                kwargs["choices"] = field.metadata["choices"]
            if kind is bool:
                group.add_argument(
                    flag_name(field),
                    action=argparse.BooleanOptionalAction,
                    help=help_text,
                    **kwargs,
                )
            elif field.name == "channels":
                group.add_argument(flag_name(field), type=_parse_channels, help=help_text, **kwargs)
            elif field.name == "options":
                group.add_argument(
                    flag_name(field),
                    type=_parse_option,
                    action="append",
                    metavar="KEY=VALUE",
                    help=help_text,
                    **kwargs,
                )
            else:
                group.add_argument(flag_name(field), type=kind, help=help_text, **kwargs)


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config fields given on the command line, as {section: {field: value}}."""
    overrides: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for dest, value in vars(args).items():
        section, _, name = dest.partition(".")
        if section in SECTIONS and name:
            overrides[section][name] = dict(value) if name == "options" else value
    return overrides
