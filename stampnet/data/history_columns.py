"""Decoding an alert's history straight into numpy columns: a compiled Avro walker.

An alert's history (``prv_candidates``, ``fp_hists``: tens of records of ~30-60 fields each) is
most of a packet's bytes, and the light curve needs 6 of those fields. fastavro must build every
record it decodes (a dict per entry, even with a reader schema that drops fields), and the rows
are then converted from those dicts. Here the history fields of the writer schema are compiled
into small integer tables (a *plan*), and a Numba-compiled function walks the Avro bytes by those
tables: it skips the unwanted fields byte-wise and writes the wanted ones into a float64 array,
one row per entry. ``AvroDecoder`` decodes the fields before and after the history with fastavro.

Its contract, like the history jump's: the columns hold exactly what ``history._table`` and
``history._signs`` make of a full decode's entries (NaN for null, missing and non-finite values;
``isdiffpos`` as 1.0 / 0.0), and the walk ends where a full decode's would; or the walk reports a
failure and the block is decoded in full by fastavro (slower, same result). It fails on malformed
bytes, on a string that is not ASCII (fastavro would check its UTF-8), on an ``isdiffpos`` other
than 't', 'f', '1' or '0', and when a row buffer is too small (then retried larger). A schema the
plan cannot express (named type references, nested records or arrays inside an entry, a wanted
field of a non-numeric type) gets no plan: fastavro decodes it, as without this module.
"""

from __future__ import annotations

import functools

import numpy as np

#: Wanted entry fields decoded as ``history._sign`` of their value instead of as numbers.
SIGN_FIELDS = frozenset({"isdiffpos"})
#: Rows per history field that the first walk of a record makes room for (doubled on overflow).
INITIAL_ROWS = 256
# Avro types of an entry's fields, as the walker knows them.
_NULL, _BOOLEAN, _VARINT, _FLOAT, _DOUBLE, _BYTES, _STRING, _FIXED = range(8)
_PRIMITIVES = {"null": _NULL, "boolean": _BOOLEAN, "int": _VARINT, "long": _VARINT,
               "float": _FLOAT, "double": _DOUBLE, "bytes": _BYTES, "string": _STRING}  # fmt: skip
_NUMERIC = frozenset({_NULL, _BOOLEAN, _VARINT, _FLOAT, _DOUBLE})
_SIGN = frozenset({_NULL, _BOOLEAN, _STRING})
MAX_BRANCHES = 4


class HistoryColumns:
    """The wanted fields of one history array (``prv_candidates``, ``fp_hists``) as columns.

    ``history.detection_rows`` and ``history.forced_rows`` take it in place of the list of
    entry dicts that fastavro gives; null entries (in nullable item unions) are left out, as
    ``history._entries`` leaves them out.
    """

    __slots__ = ("_names", "_values")

    def __init__(self, names: tuple[str, ...], values: np.ndarray):
        self._names = {name: index for index, name in enumerate(names)}
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    def column(self, name: str) -> np.ndarray:
        """The column of ``name`` (float64; all NaN if the schema has no such field)."""
        index = self._names.get(name)
        if index is None:
            return np.full(len(self._values), np.nan)
        return self._values[:, index]

    def table(self, names) -> np.ndarray:
        """(N, len(names)) float64 of those columns, as ``history._table`` gives of dicts."""
        if tuple(self._names)[: len(names)] == tuple(names):  # the decoded order: a view
            return self._values[:, : len(names)]
        return np.stack([self.column(name) for name in names], axis=1).reshape(len(self), -1)


def _branches(schema) -> list:
    return list(schema) if isinstance(schema, list) else [schema]


def _entry_type(schema) -> tuple[int, int] | None:
    """(walker type, fixed size) of a primitive, enum or fixed; None for anything else."""
    name = schema.get("type") if isinstance(schema, dict) else schema
    if isinstance(schema, dict) and name == "enum":
        return _VARINT, 0
    if isinstance(schema, dict) and name == "fixed":
        return _FIXED, int(schema["size"])
    if isinstance(name, str) and name in _PRIMITIVES:
        return _PRIMITIVES[name], 0
    return None


def _record_plan(record: dict, wanted: tuple[str, ...]) -> list | None:
    """Per field of an entry record: (is union, [(type, size)...], column or -1, is sign)."""
    fields = []
    for field in record["fields"]:
        union = isinstance(field["type"], list)
        types = [_entry_type(branch) for branch in _branches(field["type"])]
        if None in types or len(types) > MAX_BRANCHES:
            return None
        column = wanted.index(field["name"]) if field["name"] in wanted else -1
        allowed = _SIGN if field["name"] in SIGN_FIELDS else _NUMERIC
        if column >= 0 and not {kind for kind, _ in types} <= allowed:
            return None
        fields.append((union, types, column, field["name"] in SIGN_FIELDS))
    return fields


def _array_plan(schema, wanted: tuple[str, ...]) -> tuple | None:
    """(top branches, item branches, entry plan) of an array of records, or of a union of
    null and such an array, whose items may be a union of null and the record."""
    top = []
    item_plan = None
    for branch in _branches(schema):
        if branch == "null":
            top.append(0)
            continue
        if not (isinstance(branch, dict) and branch.get("type") == "array") or item_plan:
            return None
        items = []
        for item in _branches(branch["items"]):
            if item == "null":
                items.append(0)
            elif isinstance(item, dict) and item.get("type") == "record" and item_plan is None:
                item_plan = _record_plan(item, wanted)
                if item_plan is None:
                    return None
                items.append(1)
            else:
                return None
        if item_plan is None:
            return None
        item_union = isinstance(branch["items"], list)
        top.append(1)
    if item_plan is None or len(top) > MAX_BRANCHES:
        return None
    return (top if isinstance(schema, list) else []), (items if item_union else []), item_plan


class HistoryPlan:
    """The walker's tables for a run of history fields of one writer schema.

    Args:
        schemas: the Avro types of the history fields, in writer order.
        wanted: per history field, the entry fields to decode into columns.
    Raises ``ValueError`` if a type is beyond the walker (see the module docstring).
    """

    def __init__(self, schemas: list, wanted: list[tuple[str, ...]]):
        plans = [_array_plan(schema, names) for schema, names in zip(schemas, wanted, strict=True)]
        if None in plans:
            raise ValueError("history type beyond the compiled walker")
        self.wanted = [tuple(names) for names in wanted]
        count = len(plans)
        width = max(len(plan[2]) for plan in plans)
        self.top = np.full((count, MAX_BRANCHES + 1), -1, np.int64)
        self.items = np.full((count, MAX_BRANCHES + 1), -1, np.int64)
        self.fields = np.full((count, width, 3), -1, np.int64)  # (union?, column, sign?)
        self.types = np.full((count, width, MAX_BRANCHES, 2), -1, np.int64)
        self.field_count = np.array([len(plan[2]) for plan in plans], np.int64)
        for index, (top, items, entry) in enumerate(plans):
            self.top[index, 0], self.top[index, 1 : len(top) + 1] = len(top), top
            self.items[index, 0], self.items[index, 1 : len(items) + 1] = len(items), items
            for position, (union, types, column, sign) in enumerate(entry):
                self.fields[index, position] = (union, column, sign)
                self.types[index, position, : len(types)] = types
        self.columns = max(1, *(len(names) for names in self.wanted))
        self._rows = INITIAL_ROWS

    def decode(self, data: np.ndarray, position: int) -> tuple[list, int] | None:
        """(per history field: ``HistoryColumns`` or None for null, end position) of the
        history starting at ``position`` of ``data`` (uint8), or None if the walk fails."""
        walk = _walker()
        while True:
            out = np.empty((len(self.wanted), self._rows, self.columns), np.float64)
            counts = np.zeros(len(self.wanted), np.int64)
            end = walk(data, position, self.top, self.items, self.fields, self.types,
                       self.field_count, out, counts)  # fmt: skip
            if end != -2:
                break
            self._rows *= 2  # a longer history than any before: room for it, and retry
        if end < 0:
            return None
        values = [
            None if counts[index] < 0 else HistoryColumns(names, out[index, : counts[index]].copy())
            for index, names in enumerate(self.wanted)
        ]
        return values, int(end)


@functools.cache
def _walker():
    from stampnet.data.history_walker import walk_history

    return walk_history
