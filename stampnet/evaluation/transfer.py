"""How a classifier trained elsewhere (e.g. on the built-in data) does on the labelled real alerts.

``evaluate_on_sample(model, sample)`` runs any stampnet classifier (a ``train.py`` run's
``model.keras``, an ALeRCE import) on a ``RealSample`` and returns per-class recall, precision,
the confusion matrix, the same split by label strength, and how many alerts lacked features the
model reads, with intervals over resamplings of the sample's objects (``sample_intervals``).
``transfer_table`` prints the results side by side; ``LABEL_NOTES`` says what the
heuristic labels of ``../shared/data/ztf`` mean for each number, and ``notes_for`` picks the notes
that apply to a model (images-only or with metadata features).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from stampnet.evaluation.metrics import classification_metrics
from stampnet.evaluation.real_sample import RealSample
from stampnet.evaluation.sample_intervals import interval_text, object_intervals
from stampnet.features import METADATA_FIELDS

#: A reference-image source this close (pixels) and this bright (mag) shows in the template: a
#: host, a star. The stamp-only errors on the real sample split along it: real SNe without one are
#: the ones called asteroids, real bogus with one (bad subtractions of stars) the ones called VS.
SOURCE_DISTANCE_PX, SOURCE_MAG = 3.0, 21.5

#: What each heuristic label (../shared/data/ztf/README.md, labels.csv) means for a number computed
#: against it. Keys: a class name, or "features" for models that read metadata.
LABEL_NOTES = {
    "asteroid": (
        "asteroid = a known solar-system object within 5 arcsec (ssdistnr/ssnamenr of the same "
        "packet): reliable, but ecliptic latitude and ndethist=0-ish history, which feature models "
        "read, are what the label's population shares"
    ),
    "bogus": (
        "bogus = drb < 0.1, the deep real/bogus CNN score on the same stamps (weak label, no human "
        "vetting): recall measures agreement with that CNN; rb, a feature of alerce26 (the 2020 "
        "model), is an older real/bogus score of the same kind, so a feature model can partly read "
        "the label"
    ),
    "SN": "SN = TNS spectroscopic class or SIMBAD SN (strong); broker test sets favour bright SNe",
    "AGN": (
        "AGN = SIMBAD/TNS QSO/AGN or a blazar catalogue (23 strong, 5 weak candidates); only 28 "
        "alerts of 24 objects: one alert moves recall by 3.6 points"
    ),
    "VS": (
        "VS = SIMBAD variable-star type (strong) or VSX/GCVS match (weak): the catalogue match is "
        "to a star at the position, which sgscore1/distpsnr1 (features) also see"
    ),
    "features": (
        "feature models read the packet metadata the labels were partly derived from "
        "(star-galaxy score and PS1 distance for VS/AGN hosts, ecliptic latitude for asteroids, "
        "rb for bogus): their numbers are an upper bound on what the stamps alone carry"
    ),
    "alerce": (
        "ALeRCE's models were trained on ZTF alerts labelled by cross-matches with largely the "
        "same catalogues (and 2019-2020 objects may overlap): agreement with these labels is "
        "expected to be high and is not an independent accuracy"
    ),
}


def predict_probabilities(model, sample: RealSample, batch_size: int = 256) -> np.ndarray:
    """(N, C) probabilities of ``sample`` in the order of ``sample.class_names``.

    Raises:
        ValueError: the model lacks one of the sample's classes.
    """
    from stampnet.inference import Classifier, load_classifier

    classifier = model if isinstance(model, Classifier) else load_classifier(model)
    missing = [name for name in sample.class_names if name not in classifier.class_names]
    if missing:
        raise ValueError(
            f"model {classifier.name!r} has classes {classifier.class_names}, lacking {missing} "
            f"of the real sample's {sample.class_names}"
        )
    columns = [classifier.class_names.index(name) for name in sample.class_names]
    rows = []
    for start in range(0, len(sample), batch_size):
        index = slice(start, start + batch_size)
        rows.append(classifier.predict(sample.inputs(classifier.feature_names, index)))
    probabilities = np.concatenate(rows)[:, columns]
    # Renormalise over the sample's classes (a model with extra classes keeps its ranking).
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def no_match_encoding(classifier) -> str | None:
    """How the classifier reads a missing catalogue match (``--no-match-as``); None when it
    reads no features."""
    return classifier.record.no_match if classifier.feature_names else None


def evaluate_on_sample(model, sample: RealSample, *, name: str | None = None) -> dict:
    """Metrics of a classifier on the labelled real alerts.

    Args:
        model: a ``.keras`` path, a Keras model or a ``stampnet.inference.Classifier``.
        sample: the labelled real alerts (``load_real_sample``).
        name: shown in tables (default: the model's name).

    Returns:
        ``classification_metrics`` plus ``name``, ``feature_names``, ``no_match`` (how it reads
        a missing catalogue match; None without features), ``missing_features`` (alerts
        lacking at least one feature the model reads), ``objects`` (how many the alerts are
        of), ``intervals`` (95 % intervals of accuracy and macro recall over resamplings of
        those objects, ``sample_intervals.object_intervals``), ``by_strength`` (accuracy and
        per-class recall on strong and on weak labels), ``by_reference_source`` (per true
        class, alerts with and without a reference source in the template, and what they were
        predicted as) and ``predicted`` (class index per alert).
    """
    from stampnet.inference import Classifier, load_classifier

    classifier = model if isinstance(model, Classifier) else load_classifier(model)
    probabilities = predict_probabilities(classifier, sample)
    metrics = classification_metrics(sample.labels, probabilities, sample.class_names)
    predictions = probabilities.argmax(axis=1)
    by_strength = {}
    for strength in sorted(set(sample.strengths.tolist())):
        chosen = sample.strengths == strength
        correct = predictions[chosen] == sample.labels[chosen]
        recall = {}
        for index, class_name in enumerate(sample.class_names):
            in_class = sample.labels[chosen] == index
            if in_class.any():
                recall[class_name] = float(correct[in_class].mean())
        by_strength[strength or "none"] = {
            "alerts": int(chosen.sum()),
            "accuracy": float(correct.mean()),
            "recall": recall,
        }
    return {
        "name": name or classifier.name,
        "feature_names": list(classifier.feature_names),
        "no_match": no_match_encoding(classifier),
        "missing_features": int((sample.missing_features(classifier.feature_names) > 0).sum()),
        **metrics,
        "objects": int(np.unique(sample.object_ids).size),
        "intervals": object_intervals(
            sample.labels, predictions, sample.object_ids, len(sample.class_names)
        ),
        "by_strength": by_strength,
        "by_reference_source": reference_source_split(sample, predictions),
        "predicted": predictions.tolist(),
    }


def reference_source_split(sample: RealSample, predictions: np.ndarray) -> dict:
    """Per true class, the predictions of alerts with a reference source (``magnr`` brighter than
    ``SOURCE_MAG`` within ``SOURCE_DISTANCE_PX``, e.g. a visible host) and of those without."""
    magnr = sample.metadata[:, METADATA_FIELDS.index("magnr")]
    distnr = sample.metadata[:, METADATA_FIELDS.index("distnr")]
    with np.errstate(invalid="ignore"):
        has_source = (magnr < SOURCE_MAG) & (distnr >= 0) & (distnr <= SOURCE_DISTANCE_PX)
    split = {}
    for index, name in enumerate(sample.class_names):
        split[name] = {}
        for part, chosen in (("source", has_source), ("no_source", ~has_source)):
            chosen = chosen & (sample.labels == index)
            counts = np.bincount(predictions[chosen], minlength=len(sample.class_names))
            split[name][part] = {
                "alerts": int(chosen.sum()),
                "predicted": dict(zip(sample.class_names, counts.tolist(), strict=True)),
            }
    return split


def reference_source_text(result: Mapping) -> str:
    """``by_reference_source`` of one result, a line per true class."""
    lines = [
        f"{result['name']}: predicted classes of alerts with / without a reference source "
        f"brighter than {SOURCE_MAG} mag within {SOURCE_DISTANCE_PX:g} px"
    ]
    for name, parts in result["by_reference_source"].items():
        cells = []
        for part in ("source", "no_source"):
            counts = ", ".join(
                f"{predicted} {count}"
                for predicted, count in parts[part]["predicted"].items()
                if count
            )
            cells.append(f"{parts[part]['alerts']} ({counts or '-'})")
        lines.append(f"  {name:>9s}: with {cells[0]}; without {cells[1]}")
    return "\n".join(lines)


def notes_for(result: Mapping) -> list[str]:
    """The label notes that apply to one model's numbers."""
    notes = [LABEL_NOTES[name] for name in result["class_names"] if name in LABEL_NOTES]
    if result["feature_names"]:
        notes.append(LABEL_NOTES["features"])
    if result["name"].lower().startswith("alerce"):
        notes.append(LABEL_NOTES["alerce"])
    return notes


def transfer_table(results: Sequence[Mapping]) -> str:
    """Recall and precision per class, accuracy and macro recall, one row per model."""
    class_names = results[0]["class_names"]
    support = [results[0]["per_class"][name]["support"] for name in class_names]
    width = max(24, *(len(result["name"]) for result in results))
    head = " ".join(
        f"{name}({count}):R/P".rjust(17) for name, count in zip(class_names, support, strict=True)
    )
    lines = [f"{'model':{width}s} {'feat':>4s} {head} {'acc':>6s} {'macroR':>6s}"]
    for result in results:
        cells = " ".join(
            f"{result['per_class'][name]['recall']:.2f}/{result['per_class'][name]['precision']:.2f}".rjust(
                17
            )
            for name in class_names
        )
        lines.append(
            f"{result['name']:{width}s} {len(result['feature_names']):4d} {cells} "
            f"{result['accuracy']:6.3f} {result['macro_recall']:6.3f}"
        )
    return "\n".join(lines)


def intervals_text(results: Sequence[Mapping]) -> str:
    """Each result's accuracy and macro recall with their intervals over object resamplings."""
    lines = []
    for result in results:
        cells = ", ".join(
            interval_text(name.replace("_", " "), result[name], result["intervals"][name])
            for name in ("accuracy", "macro_recall")
        )
        lines.append(f"  {result['name']}: {cells} ({result['objects']} objects)")
    return "\n".join(lines)


def confusion_text(result: Mapping) -> str:
    """The confusion matrix of one result (rows true, columns predicted)."""
    names = result["class_names"]
    lines = [f"{result['name']}  (rows: true label, columns: predicted)"]
    lines.append(" " * 10 + "".join(f"{name:>9s}" for name in names))
    for name, row in zip(names, result["confusion_matrix"], strict=True):
        lines.append(f"{name:>10s}" + "".join(f"{count:9d}" for count in row))
    return "\n".join(lines)
