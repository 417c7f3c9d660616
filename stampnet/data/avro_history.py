"""Avro records whose history is decoded into columns (``history_columns``), the rest by fastavro.

``AvroDecoder(..., history_columns=HISTORY_SUBFIELDS)`` decodes each record of a block as: the
fields before the history with fastavro (a reader schema keeps the requested ones), the history
fields with the compiled walker (``HistoryColumns`` in place of lists of entry dicts), the fields
after it with fastavro again, from where the walk ended. Any failure (of the walk, or a fastavro
error in the block) returns None, and the caller decodes the whole block with fastavro as
before: the records are a full decode's, with the history as columns, or they come from a full
decode.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import fastavro
import numpy as np

from stampnet.data.errors import CORRUPT_INPUT_ERRORS
from stampnet.data.history_columns import HistoryPlan


def _part(writer: dict, fields: list, wanted: tuple[str, ...]) -> tuple:
    """(parsed writer, parsed reader or None) of a record schema holding only ``fields``."""
    schema = {**writer, "fields": fields}
    kept = [field for field in fields if field["name"] in wanted]
    parsed = fastavro.parse_schema(schema)
    if len(kept) == len(fields):
        return parsed, None
    return parsed, fastavro.parse_schema({**writer, "fields": kept})


class ColumnarHistory:
    """How to decode the records of one writer schema with the history as columns.

    Build it with ``of_schema``, which returns None where the plan does not apply.
    """

    def __init__(self, prefix: tuple, plan: HistoryPlan, names: list[str], tail: tuple):
        self.prefix, self.plan, self.names, self.tail = prefix, plan, names, tail

    @classmethod
    def of_schema(
        cls, writer: dict, fields: tuple[str, ...] | None, history_columns: Mapping
    ) -> ColumnarHistory | None:
        """The plan for ``writer`` when its history fields (``history_columns`` keys) that it
        has are contiguous, all among ``fields``, and of a shape the walker knows; else None."""
        if not fields or not history_columns:
            return None
        try:
            from stampnet.data import history_walker  # noqa: F401 (Numba compiles the walk)
        except ImportError:  # no (working) Numba: fastavro decodes the history
            return None
        if not isinstance(writer, dict) or not isinstance(writer.get("fields"), list):
            return None
        names = [field["name"] for field in writer["fields"]]
        at = [index for index, name in enumerate(names) if name in history_columns]
        if not at or at != list(range(at[0], at[-1] + 1)):
            return None
        history = [names[index] for index in at]
        if not set(history) <= set(fields):
            return None
        try:
            plan = HistoryPlan(
                [writer["fields"][index]["type"] for index in at],
                [tuple(history_columns[name]) for name in history],
            )
            prefix = _part(writer, writer["fields"][: at[0]], fields)
            tail = _part(writer, writer["fields"][at[-1] + 1 :], fields)
        except (ValueError, *CORRUPT_INPUT_ERRORS):  # beyond the walker, or named types
            return None
        return cls(prefix, plan, history, tail)

    def records(self, data: bytes, count: int) -> list[dict] | None:
        """The ``count`` records of a decompressed block, or None: decode it in full then."""
        stream = io.BytesIO(data)
        array = np.frombuffer(data, np.uint8)
        records = []
        try:
            for _ in range(count):
                record = fastavro.schemaless_reader(stream, *self.prefix)
                walked = self.plan.decode(array, stream.tell())
                if walked is None:
                    return None
                values, end = walked
                record.update(zip(self.names, values, strict=True))
                stream.seek(end)
                record.update(fastavro.schemaless_reader(stream, *self.tail))
                records.append(record)
        except CORRUPT_INPUT_ERRORS:  # the full decode yields the records before the error
            return None
        return records
