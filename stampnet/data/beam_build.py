"""Distributed dataset builds: the ``ztf_alerts`` builder as an Apache Beam pipeline.

``build_dataset_beam`` writes the same examples, in the same splits, with the same dataset card
as ``stampnet.data.build.build_dataset``, but decodes the alert files in parallel on Beam workers
instead of in one process: locally with the DirectRunner in multi-process mode
(``--direct_num_workers=N --direct_running_mode=multi_processing``), or on any Beam runner
(Dataflow, Flink, Spark) through its pipeline options. Needs the ``beam`` extra
(``pip install -e ".[cpu,beam]"``).

The single-process build's SQLite staging becomes Beam shuffles:

1. every file is decoded by one worker (the build's reader: ``own.AlertReader`` by default), each
   alert tagged with its read position, labelled and checked against the dataset's geometry;
2. alerts are grouped by candid, and the newest schema version kept (ties: the first read, as the
   staging does); the others are rejected as ``duplicate candid``;
3. alerts are grouped by object: the object's label (``splits.object_label``), split key and
   the split the input gives, if any;
4. objects are grouped by label; those without a given split are ranked by split key and cut at
   the fractions (``splits.split_sizes``): the same splits as the staging's SQL;
5. every object's alert list meets its (split, label) through a side input (a dict by object id),
   not a ``CoGroupByKey`` (until round 3), which failed on the whole shared sample (DirectRunner,
   2 processes: ZTF18aagqxtf in one run, ZTF18aaxxewy in another got no split);
6. examples are made per alert (``alerts``) or per object (``sequences``) and written by TFDS'
   Beam writer, which shuffles through the runner (on disk, out of core) rather than in memory.

The DirectRunner (Beam 2.77, multi-process, 1 or 2 workers) lost records of the whole shared
sample now and then, with no error, on a loaded machine: in round 4, 4 of 6 whole-sample builds,
each in one config and in one place (three times inside the largest split's branch of TFDS'
writer, once before it: the sequences pipeline made 1644 of the 1806 sequences). The cause is a
race in the runner's data plane, not in our steps nor in TFDS: when writing a stage's input to a
worker takes longer than a second, the stream's periodic flush clears bytes it never sent
(``stampnet.data.beam_data_plane``, with the measurements). ``build_dataset_beam`` closes that
race before it runs a pipeline. ``beam_summary.check_complete`` still fails the build,
publishing nothing, unless every config's pipeline read and decoded what the ``alerts`` one did,
every decoded alert is kept or a duplicate, and every split holds the examples the card counts;
its message gives the counts after each step (``stampnet.data.beam_counts``).

Both configs are separate TFDS pipelines, so the files are decoded twice (the plain build decodes
them once); the dataset card is computed by the ``alerts`` pipeline. The steps are plain functions
in ``stampnet.data.beam_transforms``, the card's summary is ``stampnet.data.beam_summary``; the
checks, the free-space estimate, the atomic swap of the output (``stampnet.data.output``) and
the card are the plain build's (``build.BuildRequest``).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import tensorflow_datasets as tfds

from stampnet.data import beam_counts, beam_data_plane, beam_summary, beam_transforms, output
from stampnet.data import card as card_lib
from stampnet.data.alert import REJECTIONS_FILE, RejectionLog
from stampnet.data.build import BuildRequest
from stampnet.data.builder import CONFIGS, DEFAULT_STORED_DETECTIONS, ZtfAlerts
from stampnet.data.labels import LabelTable
from stampnet.data.splits import DEFAULT_SPLIT_FRACTIONS, SPLITS
from stampnet.geometry import geometry_of


def pipeline_options(num_workers: int = 2, extra: list[str] | tuple[str, ...] = ()):
    """Beam options: the DirectRunner with ``num_workers`` processes, unless ``extra`` (Beam
    command-line options, e.g. ``--runner=FlinkRunner --flink_master=host:8081``) says else."""
    from apache_beam.options.pipeline_options import PipelineOptions

    extra = list(extra)
    if not any(option.startswith("--runner") for option in extra):
        extra = [
            "--runner=DirectRunner",
            f"--direct_num_workers={int(num_workers)}",
            "--direct_running_mode=multi_processing",
            *extra,
        ]
    return PipelineOptions(extra)


def first_geometry(reader, files):
    """The stamp geometry of the first alert the reader yields, in file order (the staging's
    rule: every other alert must share it)."""
    for path in files:
        alerts = reader([path], rejections=RejectionLog(warn=False))
        with contextlib.closing(alerts) if hasattr(alerts, "close") else contextlib.nullcontext():
            for alert in alerts:
                return geometry_of(alert.channels, alert.stamps.shape)
    return None


with tfds.core.registered.skip_registration():

    class BeamZtfAlerts(ZtfAlerts):
        """``ZtfAlerts`` whose examples come from a Beam pipeline (same name, configs, features).

        Args:
            files: the alert files, in the plain build's order.
            summary_path: where the ``alerts`` config writes its card summary (JSON).
            Other arguments as ``ZtfAlerts`` (``reader``, ``labels`` and ``geometry`` given).
        """

        name = "ztf_alerts"

        def __init__(self, *, files=(), summary_path=None, **kwargs):
            self._files = [str(path) for path in files]
            self._summary_path = summary_path
            super().__init__(**kwargs)

        def download_and_prepare(self, *args, **kwargs):
            # The plain builder stages the sources first; here the pipeline reads them. TFDS'
            # Beam writer shuffles through the runner, so the shuffle memory cap is not needed.
            return tfds.core.GeneratorBasedBuilder.download_and_prepare(self, *args, **kwargs)

        def _split_generators(self, dl_manager, pipeline):
            import apache_beam as beam

            del dl_manager
            objects = self._objects(pipeline, beam)
            if self.builder_config.name == "alerts":
                examples = objects | "AlertExamples" >> beam.FlatMap(beam_transforms.alert_examples)
            else:
                examples = objects | "SequenceExamples" >> beam.Map(
                    beam_transforms.sequence_example, max_detections=self._max_detections
                )
            if self._summary_path:  # examples made per split, before TFDS' writer
                beam_counts.count_made(beam, examples, self._summary_path, self.builder_config.name)
            return {
                split: examples
                | f"Select{split}" >> beam.Filter(lambda item, s=split: item[0] == s)
                | f"Drop{split}" >> beam.Map(lambda item: item[1])
                for split in SPLITS
            }

        def _objects(self, pipeline, beam):
            """(split, label, alerts sorted by jd) of every object."""
            decoded = (
                pipeline
                | "Files" >> beam.Create(list(enumerate(self._files)))
                | "Reshuffle" >> beam.Reshuffle()  # one file per worker, not all on one
                | "Decode"
                >> beam.FlatMap(
                    beam_transforms.decode_file,
                    reader=self._reader,
                    labels=self._labels,
                    geometry=self._geometry,
                )
            )
            if self._summary_path:  # each pipeline decodes the files: what this one read
                beam_counts.count_read(beam, decoded, self._summary_path, self.builder_config.name)
            alerts = (
                decoded
                | "Alerts" >> beam.Filter(lambda item: item[0] == "alert")
                | "ByCandid" >> beam.Map(lambda item: (item[1]["candid"], item[1]))
                | "GroupCandid" >> beam.GroupByKey()
                | "Newest" >> beam.FlatMap(beam_transforms.keep_newest)
            )
            kept = (
                alerts
                | "Kept" >> beam.Filter(lambda item: item[0] == "alert")
                | "ByObject" >> beam.Map(lambda item: (item[1]["object_id"], item[1]))
                | "GroupObject" >> beam.GroupByKey()
                | "AlertLists" >> beam.MapTuple(lambda object_id, group: (object_id, list(group)))
            )
            splits = (
                kept
                | "ObjectLabel" >> beam.Map(beam_transforms.object_entry, seed=self._seed)
                | "GroupLabel" >> beam.GroupByKey()
                | "Split"
                >> beam.FlatMap(
                    beam_transforms.assign_label_splits, fractions=self._split_fractions
                )
            )
            # Every object meets its split through a side input (object id -> (split, label)),
            # not a CoGroupByKey (see the module doc). On Dataflow a dict side input of 1.45 M
            # objects is ~0.4 GB per worker.
            objects = kept | "ObjectItems" >> beam.Map(
                beam_transforms.with_split, splits=beam.pvalue.AsDict(splits)
            )
            if self.builder_config.name == "alerts" and self._summary_path:
                beam_counts.summarise(beam, decoded, alerts, kept, objects, self._summary_path)
            return objects


def build_dataset_beam(
    sources,
    data_dir: str | Path,
    *,
    labels: str | Path | LabelTable | None = None,
    seed: int = 0,
    max_detections: int = DEFAULT_STORED_DETECTIONS,
    split_fractions=DEFAULT_SPLIT_FRACTIONS,
    generator: str | None = None,
    overwrite: bool = False,
    scratch_dir: str | Path | None = None,
    reader=None,
    num_workers: int = 2,
    beam_args=(),
) -> dict:
    """``build.build_dataset`` as Beam pipelines; the same arguments, plus:

    Args:
        num_workers: DirectRunner processes (ignored when ``beam_args`` names a runner).
        beam_args: Beam pipeline options, e.g. ``["--runner=DataflowRunner", "--project=P",
            "--region=R", "--temp_location=gs://B/tmp"]``; ``data_dir`` (and ``scratch_dir``,
            where the card summary is written) must then be paths the runner's workers share.

    Returns:
        The dataset card, as written to ``<data_dir>/dataset_card.json``.
    """
    started = time.perf_counter()
    request = BuildRequest.check(sources, labels, max_detections, split_fractions, reader)
    options = pipeline_options(num_workers, beam_args)
    # The DirectRunner runs in this process: without this its data plane drops records under load.
    beam_data_plane.guard_runner_writes()
    with output.building(
        data_dir, request.files, overwrite=overwrite, scratch_dir=scratch_dir
    ) as paths:
        scratch = paths.staging / "beam"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            summary = _run_pipelines(request, paths, scratch, seed, max_detections, options)
            if summary.num_alerts() == 0:
                raise ValueError(f"No usable alert in {sources!r} ({summary.rejections.counts()})")
            beam_summary.check_complete(summary, paths.partial)
            card = request.card(summary, paths, seed, max_detections, generator)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        card["build_seconds"] = round(time.perf_counter() - started, 2)
        card["build_runner"] = {"beam": True, "options": options.get_all_options(drop_default=True)}
        card_lib.write_card(paths.partial, card)
    summary.rejections.warn_summary(f"building {data_dir}", saved=Path(data_dir) / REJECTIONS_FILE)
    return card


def _run_pipelines(request, paths, scratch, seed, max_detections, options):
    geometry = first_geometry(request.reader, request.files)
    if geometry is None:
        raise ValueError(f"No alert could be read from {request.sources!r}: nothing to build.")
    summary_path = scratch / beam_summary.SUMMARY_NAME
    for config in CONFIGS:
        BeamZtfAlerts(
            config=config,
            data_dir=str(paths.partial),
            files=request.files,
            reader=request.reader,
            labels=request.labels,
            geometry=geometry,
            seed=seed,
            max_detections=max_detections,
            split_fractions=request.fractions,
            summary_path=summary_path,
        ).download_and_prepare(
            download_dir=str(scratch / "downloads"),
            download_config=tfds.download.DownloadConfig(beam_options=options),
        )
    return beam_summary.BeamSummary(summary_path, request.labels, geometry)
