"""``--model deep_hits``: the Deep-HiTS real/bogus classifier (Cabrera-Vives et al. 2017), built
from the dataset card's stamps and classes (``stampnet.models.deep_hits``).

The preset is for its own kind of data, a balanced real/bogus database of 21x21 stamps with four
channels: images only (``--features none``), no class balancing (the Deep-HiTS database is 50/50),
a 21-pixel crop (the whole Deep-HiTS stamp; the centre of a ZTF one), plain cross-entropy, Adam.
(The paper trained with SGD; Adam 1e-3 with early stopping is stampnet's common recipe.)
"""

from __future__ import annotations

from stampnet.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from stampnet.training.spec import Bundle, DataInfo, ModelSpec, classifier_bundle


def build(config: RunConfig, data: DataInfo) -> Bundle:
    from stampnet.models.deep_hits import build_deep_hits

    model_config = config.model_config
    if data.num_features:
        raise ValueError(
            "deep_hits reads stamps only: train it with --features none "
            f"(received {len(data.feature_names)} features)"
        )
    classifier = build_deep_hits(
        class_names=data.class_names,
        geometry=data.geometry,
        channels=data.channels,
        crop_size=data.crop_size,
        normalisation=model_config.normalisation,
        conv_filters=(model_config.filters, 2 * model_config.filters),
        dense_units=model_config.dense_units,
        dropout_rate=model_config.dropout_rate,
        name="deep_hits",
    )
    return classifier_bundle(classifier, config, data)


SPEC = ModelSpec(
    name="deep_hits",
    dataset="alerts",
    needs_labels=True,
    description="Deep-HiTS real/bogus CNN, four rotations concatenated (Cabrera-Vives et al. 2017)",
    build=build,
    data_config=DataConfig(feature_set="none", balance="none"),
    model_config=ModelConfig(crop_size=21, filters=32, dense_units=64, dropout_rate=0.5),
    train_config=TrainConfig(epochs=30, batch_size=64, learning_rate=1e-3, patience=5),
)
