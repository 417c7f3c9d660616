"""``--model stamp_classifier``: ALeRCE's rotation-invariant stamp classifier, trained with the
paper's recipe (Carrasco-Davis et al. 2021): cross-entropy minus beta times the mean prediction
entropy (beta 0.5), Adam 1e-3, batch 64, dropout 0.5, class-balanced oversampling, early stopping
on the validation loss with the best weights restored. The model itself is
``stampnet.models.stamp_classifier.build_stamp_classifier``.
"""

from __future__ import annotations

from stampnet.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from stampnet.training.spec import Bundle, DataInfo, ModelSpec, classifier_bundle


def build(config: RunConfig, data: DataInfo) -> Bundle:
    from stampnet.losses.classification import EntropyRegularisedCrossentropy
    from stampnet.models.stamp_classifier import build_stamp_classifier

    model_config = config.model_config
    classifier = build_stamp_classifier(
        class_names=data.class_names,
        feature_stats=data.feature_stats if data.num_features else None,
        crop_size=data.crop_size,
        kernel_size=model_config.kernel_size,
        channels=data.channels,
        geometry=data.geometry,
        pool_after=model_config.pool_after,
        dropout_rate=model_config.dropout_rate,
        normalisation=model_config.normalisation,
        light_curve_units=int(model_config.option("light_curve_units", 0)),
        name="stamp_classifier",
    )
    return classifier_bundle(
        classifier, config, data, loss=EntropyRegularisedCrossentropy(beta=model_config.beta)
    )


SPEC = ModelSpec(
    name="stamp_classifier",
    dataset="alerts",
    needs_labels=True,
    description="ALeRCE's rotation-invariant stamp classifier (Carrasco-Davis et al. 2021)",
    build=build,
    data_config=DataConfig(balance="oversample"),
    model_config=ModelConfig(
        crop_size=21, kernel_size=3, dropout_rate=0.5, beta=0.5, pool_after="dense_1"
    ),
    train_config=TrainConfig(epochs=30, batch_size=64, learning_rate=1e-3, patience=5),
)
