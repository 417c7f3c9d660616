"""The Numba-compiled walk over an alert's history bytes (``history_columns.HistoryPlan``).

Avro's binary encoding (specification 1.x): ``int``/``long``/``enum`` are zig-zag varints,
``float``/``double`` 4/8 little-endian bytes, ``boolean`` one byte, ``bytes``/``string`` a varint
length then the bytes, ``fixed`` its size in bytes, a union a varint branch index then the
branch, an array blocks of (varint count[, varint byte size if the count is negative], items)
ended by a count of 0. Return codes: the end position, or -1 (malformed or beyond the walker:
decode in full), -2 (more rows than ``out`` holds: retry larger).

Compiled once per installation (``cache=True`` keeps the machine code beside this module, or
in Numba's user cache if that folder is read-only).
"""

from __future__ import annotations

import numba
import numpy as np

_NULL, _BOOLEAN, _VARINT, _FLOAT, _DOUBLE, _BYTES, _STRING, _FIXED = range(8)
_FAIL, _FULL = -1, -2


@numba.njit(cache=True, nogil=True)
def _varint(data, position):
    """(value, next position) of the zig-zag varint at ``position``; position -1 if malformed."""
    result = np.uint64(0)
    shift = np.uint64(0)
    end = data.shape[0]
    while True:
        if position >= end or shift > 63:
            return np.int64(0), -1
        byte = np.uint64(data[position])
        position += 1
        result |= (byte & np.uint64(0x7F)) << shift
        if byte < 0x80:
            break
        shift += np.uint64(7)
    value = np.int64(result >> np.uint64(1)) ^ -np.int64(result & np.uint64(1))
    return value, position


@numba.njit(cache=True, nogil=True)
def _value(data, position, kind, size, sign, scratch):
    """(value as float64, next position) of one field of type ``kind``; -1 as position on
    failure. ``sign``: the value of a 't'/'f'/'1'/'0' string (``history._sign``)."""
    end = data.shape[0]
    if kind == _NULL:
        return np.nan, position
    if kind == _BOOLEAN:
        if position >= end or data[position] > 1:
            return np.nan, -1
        return np.float64(data[position]), position + 1
    if kind == _VARINT:
        number, position = _varint(data, position)
        return np.float64(number), position
    if kind == _FLOAT or kind == _DOUBLE:
        width = 4 if kind == _FLOAT else 8
        if position + width > end:
            return np.nan, -1
        for index in range(width):
            scratch[index] = data[position + index]
        if kind == _FLOAT:
            number = np.float64(scratch[:4].view(np.float32)[0])
        else:
            number = scratch.view(np.float64)[0]
        return (number if np.isfinite(number) else np.nan), position + width
    if kind == _FIXED:
        return np.nan, (position + size if position + size <= end else -1)
    length, position = _varint(data, position)  # bytes or string
    if position < 0 or length < 0 or position + length > end:
        return np.nan, -1
    if kind == _STRING:
        for index in range(position, position + length):
            if data[index] >= 0x80:  # not ASCII: fastavro's UTF-8 check decides
                return np.nan, -1
    if not sign:
        return np.nan, position + length
    if length == 1:
        char = data[position]
        if char == ord("t") or char == ord("1"):
            return 1.0, position + 1
        if char == ord("f") or char == ord("0"):
            return 0.0, position + 1
    return np.nan, -1  # another spelling: let history._sign read it from a full decode


@numba.njit(cache=True, nogil=True)
def _branch(data, position, branches):
    """(branch kind, next position) of a union described by ``branches`` (count, kinds...)."""
    if branches[0] == 0:
        return np.int64(1), position  # not a union: the one kind, 1 (array / record)
    index, position = _varint(data, position)
    if position < 0 or index < 0 or index >= branches[0]:
        return np.int64(-1), -1
    return branches[1 + index], position


@numba.njit(cache=True, nogil=True)
def _entry(data, position, fields, types, field_count, row):
    scratch = np.empty(8, np.uint8)
    row[:] = np.nan
    for field in range(field_count):
        union, column, sign = fields[field, 0], fields[field, 1], fields[field, 2]
        branch = 0
        if union == 1:
            branch, position = _varint(data, position)
            if position < 0 or branch < 0 or branch >= types.shape[1]:
                return -1
            if types[field, branch, 0] < 0:
                return -1
        kind, size = types[field, branch, 0], types[field, branch, 1]
        number, position = _value(data, position, kind, size, sign == 1, scratch)
        if position < 0:
            return -1
        if column >= 0:
            row[column] = number
    return position


@numba.njit(cache=True, nogil=True)
def walk_history(data, position, top, items, fields, types, field_count, out, counts):
    """Walks the history fields from ``position``; rows of field k go to ``out[k]``, their
    number to ``counts[k]`` (-1 where the field is null). Returns the end position or a code."""
    for history in range(top.shape[0]):
        kind, position = _branch(data, position, top[history])
        if position < 0:
            return _FAIL
        if kind == 0:
            counts[history] = -1
            continue
        rows = 0
        while True:
            count, position = _varint(data, position)
            if position < 0:
                return _FAIL
            if count == 0:
                break
            if count < 0:
                count = -count
                _, position = _varint(data, position)  # the block's size in bytes
                if position < 0:
                    return _FAIL
            for _ in range(count):
                item, position = _branch(data, position, items[history])
                if position < 0:
                    return _FAIL
                if item == 0:
                    continue  # a null entry: no row, as history._entries drops it
                if rows >= out.shape[1]:
                    return _FULL
                position = _entry(data, position, fields[history], types[history],
                                  field_count[history], out[history, rows])  # fmt: skip
                if position < 0:
                    return _FAIL
                rows += 1
        counts[history] = rows
    return position
