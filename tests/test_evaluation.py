"""Evaluation: metrics equal scikit-learn's on saved predictions, figures and reports are complete
and self-contained, runs of each kind are evaluated end to end."""

from __future__ import annotations

import base64
import html.parser
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from stampnet.evaluation import anchors, metrics, plots
from stampnet.evaluation.report import Report, json_ready, write_metrics

CLASSES = ("AGN", "SN", "VS", "asteroid", "bogus")


def _predictions(seed=0, n=300, num_classes=5, absent=None, decimals=None):
    """Noisy but informative predictions; ``absent`` is a class with no true example."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    if absent is not None:
        labels[labels == absent] = (absent + 1) % num_classes
    logits = rng.normal(size=(n, num_classes)) + 1.5 * np.eye(num_classes)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if decimals is not None:  # coarse scores: many ties, the tricky case for curves
        probabilities = np.round(probabilities, decimals)
    return labels, probabilities


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("absent, decimals", [(None, None), (3, None), (None, 1)])
def test_classification_metrics_equal_scikit_learn_on_saved_predictions(tmp_path, absent, decimals):
    labels, probabilities = _predictions(absent=absent, decimals=decimals)
    np.savez(tmp_path / "predictions.npz", labels=labels, probabilities=probabilities)
    saved = np.load(tmp_path / "predictions.npz")
    labels, probabilities = saved["labels"], saved["probabilities"]

    scores = metrics.classification_metrics(labels, probabilities, CLASSES)

    predictions = probabilities.argmax(axis=1)
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(labels, predictions))
    assert scores["macro_f1"] == pytest.approx(skm.f1_score(labels, predictions, average="macro"))
    assert scores["macro_recall"] == pytest.approx(skm.balanced_accuracy_score(labels, predictions))
    np.testing.assert_array_equal(
        scores["confusion_matrix"], skm.confusion_matrix(labels, predictions, labels=range(5))
    )
    np.testing.assert_allclose(
        scores["confusion_matrix_normalised"],
        np.nan_to_num(skm.confusion_matrix(labels, predictions, labels=range(5), normalize="true")),
    )
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predictions, labels=range(5), zero_division=0
    )
    for index, name in enumerate(CLASSES):
        row = scores["per_class"][name]
        assert row["precision"] == pytest.approx(precision[index])
        assert row["f1"] == pytest.approx(f1[index])
        assert row["support"] == support[index]
        if index == absent:
            assert np.isnan(row["recall"]) and np.isnan(row["roc_auc"])
            continue
        positives = labels == index
        assert row["recall"] == pytest.approx(recall[index])
        assert row["roc_auc"] == pytest.approx(
            skm.roc_auc_score(positives, probabilities[:, index])
        )
        assert row["average_precision"] == pytest.approx(
            skm.average_precision_score(positives, probabilities[:, index])
        )


def _real_bogus_scores():
    """20 real and 10 bogus candidates whose ROC is easy to work out by hand."""
    real = [0.9] * 19 + [0.2]
    bogus = [0.95, 0.5, 0.5, 0.3] + [0.1] * 6
    labels = np.array([1] * len(real) + [0] * len(bogus))
    scores = np.array(real + bogus)
    return labels, np.stack([1 - scores, scores], axis=1)


def test_binary_task_reports_auc_and_false_positive_rate_at_fixed_true_positive_rate():
    labels, probabilities = _real_bogus_scores()

    scores = metrics.classification_metrics(labels, probabilities, ("bogus", "real"))["binary"]

    assert scores["positive_class"] == "real"
    # 19 reals at 0.9 outrank 9 of the 10 bogus, the real at 0.2 outranks the six at 0.1.
    assert scores["roc_auc"] == pytest.approx((19 * 9 + 6) / (20 * 10))
    # 95 % of the reals (19 of 20) score >= 0.9, as does one bogus (0.95) of 10.
    assert scores["fpr_at_tpr"]["0.95"] == pytest.approx(0.1)
    assert scores["threshold_at_tpr"]["0.95"] == pytest.approx(0.9)
    # 98 % needs all 20, down to 0.2, which lets 0.95, 0.5, 0.5 and 0.3 through.
    assert scores["fpr_at_tpr"]["0.98"] == pytest.approx(0.4)
    assert scores["threshold_at_tpr"]["0.98"] == pytest.approx(0.2)


def test_positive_class_is_the_one_named_real_else_the_second():
    assert metrics.positive_class(["real", "bogus"]) == 0
    assert metrics.positive_class(["bogus", "Real"]) == 1
    assert metrics.positive_class(["0", "1"]) == 1
    assert metrics.positive_class(["star", "galaxy"]) == 1
    labels, probabilities = _real_bogus_scores()
    swapped = metrics.binary_metrics(1 - labels, probabilities[:, ::-1], ("real", "bogus"))
    assert swapped["positive_class"] == "real"
    assert swapped["fpr_at_tpr"]["0.95"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="two classes"):
        metrics.positive_class(CLASSES)


def test_multiclass_tasks_have_no_binary_section():
    labels, probabilities = _predictions(seed=3)
    assert "binary" not in metrics.classification_metrics(labels, probabilities, CLASSES)


def test_wrong_probability_shape_is_rejected_with_the_shape():
    with pytest.raises(ValueError, match=r"\(10, 4\)"):
        metrics.classification_metrics(np.zeros(10), np.zeros((10, 4)), CLASSES)
    with pytest.raises(ValueError, match=r"\[7\]"):
        metrics.classification_metrics(np.full(3, 7), np.full((3, 5), 0.2), CLASSES)


def test_most_confident_mistakes_are_wrong_and_sorted():
    labels, probabilities = _predictions(seed=1)
    rows = metrics.most_confident_mistakes(labels, probabilities, 5)
    predicted = probabilities.argmax(axis=1)
    assert len(rows) == 5 and np.all(predicted[rows] != labels[rows])
    confidence = probabilities[rows, predicted[rows]]
    assert np.all(np.diff(confidence) <= 0)
    wrong = predicted != labels
    assert confidence[0] == pytest.approx(probabilities[wrong].max(axis=1).max())


def test_accuracy_by_detections_counts_objects_with_enough_detections():
    labels = np.array([0, 1, 1, 0])
    num_detections = np.array([1, 3, 2, 3])
    # Column t: prediction with the first t+1 detections.
    by_step = np.array([[0, 0, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]])
    curve = metrics.accuracy_by_detections(labels, by_step, num_detections)
    assert curve == {
        1: {"accuracy": 0.5, "count": 4},
        2: {"accuracy": pytest.approx(2 / 3), "count": 3},
        3: {"accuracy": 1.0, "count": 2},
    }
    per_object = metrics.accuracy_by_detections(labels, by_step[:, 0], num_detections)
    assert per_object[3] == {"accuracy": 0.0, "count": 2}


def test_reconstruction_error_ignores_masked_pixels():
    inputs = np.zeros((2, 4, 4, 3))
    outputs = np.zeros((2, 4, 4, 3))
    outputs[0, 0, 0, 0] = 10.0  # masked out below
    outputs[1] = 0.5
    mask = np.ones_like(inputs)
    mask[0, 0, 0, 0] = 0
    errors = metrics.reconstruction_errors(inputs, outputs, mask)
    np.testing.assert_allclose(errors, [0.0, 0.25])
    per_class = metrics.per_class_mean(errors, [0, 1], ["a", "b", "c"])
    assert per_class["b"] == {"mean": 0.25, "std": 0.0, "count": 1}
    assert per_class["c"]["count"] == 0 and np.isnan(per_class["c"]["mean"])


def test_mean_stamp_baseline_streams_the_hand_computed_losses():
    from stampnet.evaluation.reconstruction import MeanStampBaseline

    baseline = MeanStampBaseline()
    # Two valid one-pixel stamps, 0.2 and 0.6, in two batches; a third pixel is masked out.
    baseline.add(np.full((1, 1, 1, 1), 0.2), np.full((1, 1, 1, 1), 0.5), np.ones((1, 1, 1, 1)))
    baseline.add(
        np.array([0.6, 1.0]).reshape(2, 1, 1, 1),
        np.full((2, 1, 1, 1), 0.5),
        np.array([1.0, 0.0]).reshape(2, 1, 1, 1),
    )
    scores = baseline.result()
    assert scores["valid_pixels"] == 2
    assert scores["pixel_mse"] == pytest.approx((0.3**2 + 0.1**2) / 2)
    assert scores["mean_stamp_mse"] == pytest.approx(0.2**2)  # the mean stamp is 0.4
    assert scores["mse_ratio_to_mean_stamp"] == pytest.approx(0.05 / 0.04)
    assert scores["pixel_bce"] == pytest.approx(np.log(2))
    expected = -(0.8 * np.log(0.4) + 1.2 * np.log(0.6)) / 2
    assert scores["mean_stamp_bce"] == pytest.approx(expected)


def _light_curve_rows(days, fid, kind, flux):
    from stampnet.data.history import HISTORY_FIELDS

    rows = np.full((len(days), len(HISTORY_FIELDS)), np.nan, np.float32)
    for name, values in (("days", days), ("fid", fid), ("kind", kind), ("flux", flux)):
        rows[:, HISTORY_FIELDS.index(name)] = values
    return rows


def test_light_curve_baseline_streams_the_hand_computed_errors_per_band_and_kind():
    from types import SimpleNamespace

    from stampnet.evaluation.light_curves import LightCurveBaseline, light_curve_reconstruction
    from stampnet.layers.lightcurve import FLUX_SCALE, FLUX_SOFTENING_UJY

    # Two objects of three rows: g detections, an r upper limit (no flux), r forced photometry;
    # the second object's last row is padding.
    flux = np.array([[100.0, np.nan, -20.0], [300.0, 50.0, 7.0]])
    curves = np.stack([
        _light_curve_rows([-3, -2, -1], [1, 2, 2], [0, 1, 2], flux[0]),
        _light_curve_rows([-5, -1, 0], [1, 1, 2], [0, 0, 2], flux[1]),
    ])  # fmt: skip
    mask = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    prediction = np.full((2, 3), 0.5)
    baseline = LightCurveBaseline(["AGN", "SN"])
    baseline.add(curves[:1], mask[:1], prediction[:1], labels=[1])  # two batches
    baseline.add(curves[1:], mask[1:], prediction[1:], labels=[0])
    scores = baseline.result()

    target = np.arcsinh(np.array([100.0, -20.0, 300.0, 50.0]) / FLUX_SOFTENING_UJY) / FLUX_SCALE
    assert scores["rows"] == 4
    assert scores["mse"] == pytest.approx(np.mean((target - 0.5) ** 2))
    assert scores["baseline_mse"] == pytest.approx(np.var(target))
    assert scores["mse_ratio"] == pytest.approx(scores["mse"] / scores["baseline_mse"])
    assert set(scores["per_group"]) == {"g detection", "r forced"}
    detections = target[[0, 2, 3]]
    assert scores["per_group"]["g detection"]["baseline_mse"] == pytest.approx(np.var(detections))
    forced = {
        "mse": pytest.approx((target[1] - 0.5) ** 2),
        "baseline_mse": 0.0,
        "mse_ratio": None,
        "rows": 1,
    }  # one row: no ratio
    assert scores["per_group"]["r forced"] == forced
    assert list(baseline.examples) == ["SN", "AGN"]
    np.testing.assert_allclose(baseline.examples["AGN"][0]["days"], [-5, -1])
    assert _is_png(plots.figure_png(plots.plot_light_curves(baseline.examples)))
    with pytest.raises(ValueError, match="No light-curve row with a flux"):
        LightCurveBaseline().result()
    # the report of a split without a flux says so instead of failing the evaluation
    report = Report("no flux")
    context = SimpleNamespace(collected=SimpleNamespace(light_curves={"m": LightCurveBaseline()}),
                              report=report)  # fmt: skip
    assert light_curve_reconstruction(context, "m") == {} and "not scored" in report.render()


def test_umap_is_seeded_and_records_its_parameters():
    rng = np.random.default_rng(0)
    latents = np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(6, 1, (30, 4))])
    first, used, parameters = metrics.umap_embedding(latents, seed=7, n_neighbors=10, max_points=50)
    again, _, _ = metrics.umap_embedding(latents, seed=7, n_neighbors=10, max_points=50)
    np.testing.assert_allclose(first, again)
    assert first.shape == (50, 2) and len(used) == 50
    assert parameters["random_state"] == 7 and parameters["n_neighbors"] == 10
    assert parameters["n_points"] == 50


def _is_png(data: bytes) -> bool:
    return data.startswith(b"\x89PNG\r\n\x1a\n")


def test_every_figure_renders_to_png():
    labels, probabilities = _predictions()
    rng = np.random.default_rng(0)
    stamps = rng.normal(100, 10, (3, 63, 63, 3))
    mask = np.ones_like(stamps)
    mask[0, :5] = 0
    figures = [
        plots.plot_confusion_matrices(
            skm.confusion_matrix(labels, probabilities.argmax(1), labels=range(5)), CLASSES
        ),
        plots.plot_roc_pr(labels, probabilities, CLASSES),
        plots.plot_accuracy_vs_detections({"seq": {1: {"accuracy": 0.5, "count": 4}}}),
        plots.plot_stamp_gallery(stamps, ["a", "b", "c"], masks=mask),
        plots.plot_reconstructions(stamps[:, :21, :21], stamps[:, :21, :21] * 0.9, ["a"] * 3),
        plots.plot_embedding(rng.normal(size=(20, 2)), np.arange(20) % 3 - 1, class_names=CLASSES),
        plots.plot_embedding(rng.normal(size=(20, 2)), np.arange(20) % 5 + 1, colour_label="n"),
    ]
    assert all(_is_png(plots.figure_png(figure)) for figure in figures)


def test_display_scale_ignores_invalid_pixels():
    image = np.full((5, 5), 10.0)
    image[0, 0] = 1e9  # a masked hot pixel must not set the stretch
    image[2, 2] = 20.0
    mask = np.ones((5, 5))
    mask[0, 0] = 0
    scaled = plots.display_scale(image, mask)
    assert scaled[0, 0] == 0.0 and scaled[2, 2] == 1.0 and scaled[1, 1] == 0.0


class _Resources(html.parser.HTMLParser):
    """Collects every URL the page would load or link to."""

    def __init__(self):
        super().__init__()
        self.urls, self.tags = [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.urls += [value for key, value in attrs if key in ("src", "href") and value]


def assert_self_contained(page: str) -> list[bytes]:
    """No script, style sheet or link to fetch; every image is an embedded PNG (returned)."""
    parser = _Resources()
    parser.feed(page)
    assert not parser.tags & {"script", "link", "iframe", "object"}
    assert "http://" not in page and "https://" not in page and "url(" not in page
    images = []
    for url in parser.urls:
        assert url.startswith("data:image/png;base64,"), url[:80]
        images.append(base64.b64decode(url.split(",", 1)[1]))
    assert all(_is_png(image) for image in images)
    return images


def test_report_is_self_contained_and_escapes_text(tmp_path):
    labels, probabilities = _predictions()
    report = Report("run <1> & co")
    report.paragraph("a < b")
    report.table(["x", "y"], [[1, float("nan")], ["<i>", 0.12345]], caption="c")
    report.image(plots.figure_png(plots.plot_roc_pr(labels, probabilities, CLASSES)), "roc")
    page = report.write(tmp_path / "report.html").read_text()
    assert "<h1>run &lt;1&gt; &amp; co</h1>" in page and "&lt;i&gt;" in page
    assert "0.123" in page and "–" in page
    assert len(assert_self_contained(page)) == 1


def test_metrics_json_has_no_nan_and_keeps_numpy_values(tmp_path):
    values = {"a": np.float32(0.5), "b": float("nan"), "c": np.arange(3), "d": {1: np.int64(2)}}
    path = write_metrics(values, tmp_path / "metrics.json")
    assert json.loads(path.read_text()) == {"a": 0.5, "b": None, "c": [0, 1, 2], "d": {"1": 2}}
    assert json_ready([np.inf]) == [None]


def test_anchors_are_the_published_numbers_and_marked_as_other_data():
    by_model = {anchor.model: anchor for anchor in anchors.ANCHORS}
    full = by_model["stamp classifier: stamps + metadata"]
    assert (full.value, full.uncertainty) == (0.944, 0.008)
    assert by_model["stamp classifier: stamps only"].value == 0.872
    assert by_model["random forest: metadata only"].value == 0.912
    neira = next(anchor for anchor in anchors.ANCHORS if anchor.source.startswith("Neira"))
    assert neira.value_text() == "~0.98" and neira.classes == "3"
    assert all(entry["from_other_data"] for entry in anchors.anchors_as_dicts())
    assert "other data" in anchors.CAVEAT or "their own data" in anchors.CAVEAT


# --- end to end: tiny runs of each kind on a few real alerts ------------------------------------

#: A few files of the real sample that hold every class, "other", and multi-alert objects.
TINY_SOURCES = (
    "fink_parquet/fink-science__fink_science__data__alerts__hostless_detection__part-0-0-435829"
    ".parquet",
    "multi_record_avro/part-00003-55a6e4a3-f920-47e5-a698-47f9b6bc5a74-c000.avro",
    "alerts/ztf_public_20200101.tar.gz",
    "alerts/ztf_public_20231012.tar.gz",
)
ALL_SPLITS = "train+validation+test"


def build_tiny_dataset(ztf_dir, data_dir):
    """A dataset of ~170 real alerts (every class and "other"), built with stampnet build."""
    import pandas as pd

    from stampnet.data.build import build_dataset

    labels = pd.read_csv(ztf_dir / "labels.csv")
    labels_path = Path(data_dir).parent / f"{Path(data_dir).name}_labels.csv"
    labels[labels["file"].isin(TINY_SOURCES)].to_csv(labels_path, index=False)
    sources = [str(ztf_dir / name) for name in TINY_SOURCES]
    return build_dataset(sources, data_dir, labels=labels_path, max_detections=4)


def save_run(run_dir, models: dict, card: dict, data_dir, feature_names=()):
    """A run folder as the trainer leaves it: model.keras (+ others) and model_card.json."""
    run_dir.mkdir(parents=True)
    for name, model in models.items():
        model.save(run_dir / f"{name}.keras")
    model_card = {
        "class_names": list(card["class_names"]),
        "feature_names": list(feature_names),
        "data": {"data_dir": str(data_dir)},
        "config": {"data": {"max_detections": 3}},
    }
    (run_dir / "model_card.json").write_text(json.dumps(model_card))
    return run_dir


def make_classifier_run(run_dir, card, data_dir, class_names=None):
    import keras

    from stampnet.data.card import feature_stats_for
    from stampnet.models.stamp_classifier import build_stamp_classifier

    keras.utils.set_random_seed(1)
    stats = feature_stats_for(card, "alerce23")
    model = build_stamp_classifier(
        class_names=class_names or card["class_names"], feature_stats=stats
    )
    return save_run(run_dir, {"model": model}, card, data_dir, stats.names)


def make_vae_run(run_dir, card, data_dir, model="vae"):
    import keras

    from stampnet.models.vade import build_vade
    from stampnet.models.vae import build_vae

    keras.utils.set_random_seed(2)
    size = dict(latent_dim=3, conv_filters=(4, 4), dense_units=8, seed=0)
    if model == "vade":
        autoencoder = build_vade(num_clusters=len(card["class_names"]), **size)
    else:
        autoencoder = build_vae(**size)
    models = {"model": autoencoder.functional_model(), "encoder": autoencoder.encoder}
    return save_run(run_dir, models, card, data_dir)


def make_sequence_run(run_dir, card, data_dir):
    import keras

    from stampnet.models.seq_classifier import build_seq_classifier

    keras.utils.set_random_seed(3)
    model = build_seq_classifier(
        card["class_names"], conv_filters=(4, 4), embedding_dim=8, units=8, recurrent="gru"
    )
    return save_run(run_dir, {"model": model}, card, data_dir)


def make_seq_vae_run(run_dir, card, data_dir):
    """A tiny sequence VAE with the light-curve branch, saved as the trainer saves its
    model.keras (its encoder.keras, which repeats the latents, is left out: cheaper to load)."""
    import keras

    from stampnet.models.seq_vae import build_seq_vae

    keras.utils.set_random_seed(4)
    vae = build_seq_vae(latent_dim=3, conv_filters=(4, 4), embedding_dim=8, units=8, seed=0,
                        light_curve_units=4)  # fmt: skip
    return save_run(run_dir, {"model": vae.functional_model("seq_vae_autoencoder")}, card, data_dir)


@pytest.fixture(scope="module")
def tiny_data(ztf_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("evaluation") / "tiny"
    return data_dir, build_tiny_dataset(ztf_dir, data_dir)


def _labelled(card, config="alerts", names=None):
    counts = card["counts"][config]
    names = card["class_names"] if names is None else names
    return sum(counts[split].get(name, 0) for split in counts for name in names)


def _evaluate(run, data_dir, **kwargs):
    from stampnet.evaluation.command import EvaluationOptions, evaluate_run

    options = EvaluationOptions(batch_size=32, gallery_size=3, **kwargs)
    return evaluate_run(run, data_dir=data_dir, split=ALL_SPLITS, options=options)


@pytest.fixture(scope="module")
def classifier_result(tiny_data, tmp_path_factory):
    data_dir, card = tiny_data
    run = make_classifier_run(
        tmp_path_factory.mktemp("runs") / "stamp_classifier-1", card, data_dir
    )
    return run, _evaluate(run, None)  # the run's card names its dataset


def test_classifier_run_metrics_equal_scikit_learn_and_report_is_complete(
    tiny_data, classifier_result
):
    data_dir, card = tiny_data
    run, result = classifier_result
    folder = run / "evaluation" / f"tiny-{ALL_SPLITS}"
    saved = json.loads((folder / "metrics.json").read_text())
    arrays = np.load(folder / "predictions.npz")
    labels, probabilities = arrays["labels"], arrays["probabilities/model"]
    predictions = probabilities.argmax(axis=1)
    scores = saved["models"]["model"]

    assert saved["num_examples"] == len(labels) == _labelled(card)
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(labels, predictions))
    assert scores["macro_f1"] == pytest.approx(skm.f1_score(labels, predictions, average="macro"))
    assert (
        scores["confusion_matrix"]
        == skm.confusion_matrix(
            labels, predictions, labels=range(len(card["class_names"]))
        ).tolist()
    )
    assert set(saved["figures"]) == {"confusion_model.png", "roc_pr_model.png"}
    assert all((folder / name).stat().st_size > 0 for name in saved["figures"])
    page = (folder / "report.html").read_text()
    # confusion, ROC/PR and the gallery of mistakes, all inside the page
    assert len(assert_self_contained(page)) == 3
    assert "Most confident mistakes" in page and result["report"] == str(folder / "report.html")


def test_classes_a_model_lacks_are_excluded_and_counted(tiny_data, classifier_result, tmp_path):
    from stampnet.evaluation.comparison import write_comparison

    data_dir, card = tiny_data
    alerce_like = make_classifier_run(
        tmp_path / "five", card, data_dir, class_names=["AGN", "SN", "VS", "asteroid", "bogus"]
    )
    results = [_evaluate(alerce_like, data_dir), classifier_result[1]]

    other = _labelled(card, names=["other"])
    assert other > 0 and results[0]["excluded"] == {"other": other}
    assert results[0]["num_examples"] == _labelled(card) - other
    page = write_comparison(results, tmp_path / "comparison").read_text()
    assert_self_contained(page)
    assert "Published results (other data)" in page and "0.944 ± 0.008" in page
    assert anchors.CAVEAT in page and "AGN, SN, VS, asteroid, bogus" in page
    summary = json.loads((tmp_path / "comparison" / "metrics.json").read_text())
    assert summary["common_classes"]["classes"] == ["AGN", "SN", "VS", "asteroid", "bogus"]
    assert all(entry["from_other_data"] for entry in summary["anchors"])


def test_closing_summary_of_training_says_what_evaluate_reports(tiny_data, classifier_result):
    from stampnet.training.summary import closing_summary

    data_dir, card = tiny_data
    run = make_vae_run(classifier_result[0].parent / "vae-summary", card, data_dir)
    lines = closing_summary(run, data_dir).splitlines()
    test_size = sum(card["counts"]["alerts"]["test"].get(name, 0) for name in card["class_names"])
    assert lines[0] == f"test split: {test_size} labelled alerts"
    assert "against" in lines[1] and "for the mean stamp" in lines[1]
    assert lines[2].startswith("model: ") and "of 3 latent units active" in lines[2]
    assert lines[-2:] == [f"run folder: {run}", f"next: python evaluate.py {run}   "
                          "(metrics, figures and report.html)"]  # fmt: skip

    classifier_run = classifier_result[0]
    lines = closing_summary(classifier_run, data_dir).splitlines()
    assert lines[1].startswith("model: accuracy ") and "macro-F1" in lines[1]


@pytest.mark.slow
def test_autoencoder_run_gets_reconstructions_clusters_and_seeded_umap(tiny_data, tmp_path):
    data_dir, card = tiny_data
    run = make_vae_run(tmp_path / "vade-1", card, data_dir, model="vade")
    result = _evaluate(run, data_dir, seed=5)
    latent = result["models"]["model"]
    assert set(result["models"]) == {"model"}  # encoder.keras repeats the autoencoder's latents
    assert latent["role"] == "autoencoder" and latent["latent_dim"] == 3
    assert latent["umap"]["random_state"] == 5 and latent["umap"]["n_points"] == _labelled(card)
    assert set(latent["clustering"]) >= {"unsupervised_accuracy", "nmi", "ari", "active_units"}
    assert "clustering_own" in latent  # VaDE's own p(c|z) clusters
    errors = np.load(Path(result["metrics_path"]).parent / "predictions.npz")
    per_class = latent["reconstruction_error"]["per_class"]
    for index, name in enumerate(card["class_names"]):
        chosen = errors["labels"] == index
        expected = errors["reconstruction_error/model"][chosen].mean() if chosen.any() else None
        assert per_class[name]["count"] == chosen.sum()
        if expected is not None:
            assert per_class[name]["mean"] == pytest.approx(expected)
    assert {"reconstructions_model.png", "umap_model.png"} <= set(result["figures"])


@pytest.mark.slow
def test_sequence_classifier_gets_accuracy_against_detections(tiny_data, tmp_path):
    data_dir, card = tiny_data
    run = make_sequence_run(tmp_path / "seq_classifier-1", card, data_dir)
    result = _evaluate(run, data_dir)
    curve = result["models"]["model"]["accuracy_by_detections"]
    objects = _labelled(card, "sequences")
    saved = np.load(Path(result["metrics_path"]).parent / "predictions.npz")
    detections = saved["num_detections"]
    assert curve[1]["count"] == objects == result["num_examples"] == len(detections)
    assert 1 <= detections.min() and detections.max() <= 3  # the run's max_detections
    assert sorted(curve) == list(range(1, detections.max() + 1)) and detections.max() > 1
    by_step, labels = saved["by_detections/model"], saved["labels"]
    for n, row in curve.items():
        enough = detections >= n
        assert row["count"] == enough.sum()
        assert row["accuracy"] == pytest.approx(np.mean(by_step[enough, n - 1] == labels[enough]))
    # with all its detections, each object gets the same prediction as in the main metrics
    full = by_step[np.arange(len(labels)), np.minimum(detections, 3) - 1]
    np.testing.assert_array_equal(full, saved["probabilities/model"].argmax(axis=1))
    assert "accuracy_vs_detections_model.png" in result["figures"]


@pytest.mark.slow
def test_sequence_vae_light_curve_reconstruction_is_reported_against_the_mean(tiny_data, tmp_path):
    # evaluate.py's path without its UMAP: the run's models over the split, then the report.
    from types import SimpleNamespace

    from stampnet.evaluation import loading, reports, runner
    from stampnet.evaluation.command import EvaluationOptions
    from stampnet.models.lightcurve import light_curve_target

    data_dir, card = tiny_data
    run = make_seq_vae_run(tmp_path / "seq_vae-1", card, data_dir)
    loaded = loading.load_run(run)
    batches = list(loading.split_batches(loaded, data_dir, ALL_SPLITS, card,
                                         EvaluationOptions(batch_size=32)))  # fmt: skip
    names = tuple(card["class_names"])
    collected = runner.collect(loaded.models, batches, dataset_classes=names,
                               model_classes=names, sequences=True)  # fmt: skip
    assert collected.roles == {"model": "autoencoder"}
    context = reports.ReportContext(Report("seq_vae"), collected, names, EvaluationOptions())
    section = reports.light_curve_reconstruction(context, "model")["light_curve_reconstruction"]

    model, targets, predictions = loaded.models["model"], [], []
    for inputs, _ in batches:
        inputs = {key: inputs[key] for key in loading.model_input_dims(model)}
        target, weight = (np.asarray(x) for x in light_curve_target(
            inputs["light_curve"], inputs["light_curve_mask"]))  # fmt: skip
        predicted = np.asarray(model(inputs)["light_curve_reconstruction"])
        targets.append(target[weight > 0])
        predictions.append(predicted[weight > 0])
    target, predicted = np.concatenate(targets), np.concatenate(predictions)
    assert section["rows"] == target.size > 50
    assert section["mse"] == pytest.approx(np.mean((target - predicted) ** 2), rel=1e-5)
    assert section["baseline_mse"] == pytest.approx(np.var(target), rel=1e-5)
    assert sum(row["rows"] for row in section["per_group"].values()) == target.size
    assert list(context.figures) == ["light_curves_model"]
    assert "light_curve_reconstruction" in reports.REPORTS["sequence_autoencoder"][1].__name__
    # a model without the branch gets no such section
    assert reports.light_curve_reconstruction(SimpleNamespace(
        collected=runner.Collected(None, None, None)), "model") == {}  # fmt: skip
    # the closing summary of train.py says the same on its split
    from stampnet.training.summary import closing_summary

    line = next(line for line in closing_summary(run, data_dir).splitlines()
                if "light-curve MSE" in line)  # fmt: skip
    rows = int(line.split("; ")[-1].split()[0])
    assert line.startswith("model: light-curve MSE ") and 0 < rows <= section["rows"]


@pytest.mark.slow
def test_alerce_import_on_the_real_sample_reproduces_the_original_graph(
    ztf_dir, alerce_2020_dir, tmp_path
):
    """A bare .keras (no run folder) on every labelled real alert: "other" is excluded and
    counted, and where ALeRCE classified an alert, our probabilities are its TF1 graph's."""
    import pandas as pd

    from stampnet.data.build import build_dataset
    from stampnet.models.alerce_import import import_alerce_checkpoint

    data_dir = tmp_path / "ztf_sample"
    card = build_dataset([str(ztf_dir)], data_dir, labels=ztf_dir / "labels.csv")
    model_path = tmp_path / "alerce_2020.keras"
    import_alerce_checkpoint(alerce_2020_dir / "tf1_checkpoint").save(model_path)

    result = _evaluate(model_path, data_dir)
    assert result["class_names"] == list(CLASSES)
    assert result["excluded"] == {"other": _labelled(card, names=["other"])}
    folder = tmp_path / "alerce_2020-evaluation" / f"ztf_sample-{ALL_SPLITS}"
    saved = np.load(folder / "predictions.npz")
    expected = pd.read_csv(alerce_2020_dir / "expected_probabilities.csv").set_index("candid")
    expected = expected.loc[saved["candid"]]
    classified = (expected["skipped"] == 0).to_numpy()
    ours = saved["probabilities/alerce_2020"][classified]
    theirs = expected.loc[classified, [f"p_{name}" for name in CLASSES]].to_numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # the README's count: 381 of the 664 labelled alerts ALeRCE classifies agree with the labels
    agree = ours.argmax(axis=1) == saved["labels"][classified]
    assert (agree.sum(), classified.sum()) == (381, 664)
