"""Objects labelled and split inside a build's staging index, in SQL, so that memory stays flat
for millions of objects (the rules are ``stampnet.data.splits``'s: per object, stratified by label,
reproducible from a seed; splits the input gives are kept)."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence

from stampnet.data.splits import SPLITS, check_fractions, object_label, split_key, split_sizes
from stampnet.data.staged_alerts import CHUNK_ROWS

_OBJECTS = """
DROP TABLE IF EXISTS objects;
CREATE TABLE objects (
    object_id TEXT PRIMARY KEY, label TEXT NOT NULL, split_key INTEGER NOT NULL, split TEXT);
DROP TABLE IF EXISTS temp.label_sizes;
"""


def assign_splits(db: sqlite3.Connection, fractions: Sequence[float], seed: int) -> None:
    """Labels every object of the index (majority of its labelled alerts) and splits objects per
    label, filling its ``objects`` table (see ``Staging.assign_splits``)."""
    fractions = check_fractions(fractions)
    db.executescript(_OBJECTS)  # a resumed staging assigns its splits afresh
    rows = db.execute(
        "SELECT object_id, label, COUNT(*) FROM alerts GROUP BY object_id, label ORDER BY object_id"
    )
    objects = []
    for object_id, group in itertools.groupby(rows, key=lambda row: row[0]):
        labels = itertools.chain.from_iterable(
            itertools.repeat(label, count) for _, label, count in group
        )
        objects.append((object_id, object_label(labels), split_key(object_id, seed)))
        if len(objects) >= CHUNK_ROWS:
            _insert_objects(db, objects)
    _insert_objects(db, objects)
    db.execute(
        f"""UPDATE objects SET split = given.split
        FROM (SELECT object_id, CASE MIN(CASE given_split WHEN '{SPLITS[0]}' THEN 0
                WHEN '{SPLITS[1]}' THEN 1 ELSE 2 END)
              WHEN 0 THEN '{SPLITS[0]}' WHEN 1 THEN '{SPLITS[1]}' ELSE '{SPLITS[2]}' END
              AS split
              FROM alerts WHERE given_split IS NOT NULL GROUP BY object_id) AS given
        WHERE objects.object_id = given.object_id"""
    )
    # Rank the other objects within their label by hash, then cut each label at the fractions.
    sizes = [
        (label, *split_sizes(count, fractions))
        for label, count in db.execute(
            "SELECT label, COUNT(*) FROM objects WHERE split IS NULL GROUP BY label"
        ).fetchall()
    ]
    db.execute("CREATE TEMP TABLE label_sizes (label TEXT, train INT, validation INT)")
    db.executemany("INSERT INTO label_sizes VALUES (?, ?, ?)", [s[:3] for s in sizes])
    db.execute(
        f"""UPDATE objects SET split = CASE
            WHEN ranked.rank < ranked.train THEN '{SPLITS[0]}'
            WHEN ranked.rank < ranked.train + ranked.validation THEN '{SPLITS[1]}'
            ELSE '{SPLITS[2]}' END
        FROM (SELECT object_id, train, validation, ROW_NUMBER() OVER (
                PARTITION BY objects.label ORDER BY split_key, object_id) - 1 AS rank
              FROM objects JOIN label_sizes USING (label)
              WHERE objects.split IS NULL) AS ranked
        WHERE objects.object_id = ranked.object_id"""
    )
    db.execute("CREATE INDEX objects_by_split ON objects (split, object_id)")
    db.commit()


def _insert_objects(db: sqlite3.Connection, objects: list) -> None:
    db.executemany("INSERT INTO objects (object_id, label, split_key) VALUES (?, ?, ?)", objects)
    objects.clear()
