"""The steps of the Beam build's pipelines that count what they carry and write it beside the
card's summary (``stampnet.data.beam_summary``), where ``beam_summary.check_complete`` reads it.

They take the ``apache_beam`` module as their first argument, so that this module imports without
Beam installed, like ``stampnet.data.beam_build``.
"""

from __future__ import annotations

import json
from pathlib import Path

from stampnet.data import beam_summary


def summarise(beam, decoded, alerts, kept, objects, path) -> None:
    """Adds to the ``alerts`` pipeline the steps that write its summary to ``path``:
    ``decoded`` (``decode_file``'s items), ``alerts`` (``keep_newest``'s), ``kept`` (object id,
    alert list) and ``objects`` (split, label, alerts) are the pipeline's collections."""
    rejections = (
        [
            decoded | "DecodeRejections" >> beam.Filter(_is_rejection),
            alerts | "DuplicateRejections" >> beam.Filter(_is_rejection),
        ]
        | "Rejections" >> beam.Flatten()
        | "OrderedRejections" >> beam.Map(lambda item: item[1])  # (order, dict)
    )
    alerts_read = (
        decoded
        | "Read" >> beam.Filter(lambda item: item[0] == "read")
        | "ReadCounts" >> beam.Map(lambda item: item[1])
        | "CountRead" >> beam.CombineGlobally(_sum_pairs)
    )
    # Alert records after each shuffle, so that a loss names the step it happened in.
    deduplicated = (
        alerts
        | "CountNewest" >> beam.Map(lambda item: int(item[0] == "alert"))
        | "SumNewest" >> beam.CombineGlobally(sum)
    )
    grouped = (
        kept
        | "CountGrouped" >> beam.Map(lambda item: len(item[1]))
        | "SumGrouped" >> beam.CombineGlobally(sum)
    )
    seen = objects | "Seen" >> beam.FlatMap(
        lambda item: [(alert["object_id"], alert["candid"]) for alert in item[2]]
    )
    (
        objects
        | "ObjectSummary" >> beam.Map(beam_summary.object_summary)
        | "Summary" >> beam.CombineGlobally(beam_summary.merge_summaries)
        | "WriteSummary"
        >> beam.Map(
            beam_summary.write_summary,
            path=str(path),
            alerts_read=beam.pvalue.AsSingleton(alerts_read),
            deduplicated=beam.pvalue.AsSingleton(deduplicated),
            grouped=beam.pvalue.AsSingleton(grouped),
            rejections=beam.pvalue.AsList(rejections),
            seen=beam.pvalue.AsList(seen),
        )
    )


def count_made(beam, examples, path, config: str) -> None:
    """Adds to a config's pipeline a count of the (split, example) items it hands TFDS' writer,
    written beside the summary (``made_<config>.json``): ``check_complete`` then tells a loss in
    our steps from one in the writing."""
    (
        examples
        | "MadeSplit" >> beam.Map(lambda item: (item[0], 1))
        | "CountMade" >> beam.CombinePerKey(sum)
        | "MadeCounts" >> beam.combiners.ToDict()
        | "WriteMade"
        >> beam.Map(_write_json, path=str(Path(path).with_name(f"made_{config}.json")))
    )


def count_read(beam, decoded, path, config: str) -> None:
    """Adds to a config's pipeline the (alerts read, alert records decoded) of its own decoding
    and its decoding rejections by reason, written beside the summary (``read_<config>.json``):
    both configs must read the same."""
    reasons = (
        decoded
        | "ReadRejections" >> beam.Filter(_is_rejection)
        | "ReadReason" >> beam.Map(lambda item: (item[1][1]["reason"][:120], 1))
        | "CountReasons" >> beam.CombinePerKey(sum)
        | "Reasons" >> beam.combiners.ToDict()
    )
    (
        decoded
        | "ReadOwn" >> beam.Filter(lambda item: item[0] == "read")
        | "ReadOwnCounts" >> beam.Map(lambda item: item[1])
        | "CountReadOwn" >> beam.CombineGlobally(_sum_pairs)
        | "WriteRead"
        >> beam.Map(
            lambda counts, reasons, path: _write_json([*counts, reasons], path),
            reasons=beam.pvalue.AsSingleton(reasons),
            path=str(Path(path).with_name(f"read_{config}.json")),
        )
    )


def _write_json(value, path: str) -> None:
    Path(path).write_text(json.dumps(value))


def _sum_pairs(pairs) -> tuple[int, int]:
    pairs = list(pairs)
    return sum(pair[0] for pair in pairs), sum(pair[1] for pair in pairs)


def _is_rejection(item) -> bool:
    return item[0] == "rejection"
