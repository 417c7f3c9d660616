"""One module per model family, each defining module-level ``ModelSpec`` objects that
``stampnet/training/registry.py`` names: ``stamp_classifier.py`` (SPEC), ``autoencoders.py``
(CAE, VAE, VADE, LATENT_CLASSIFIER), ``sequences.py`` (SEQ_CLASSIFIER, SEQ_VAE).
See ``stampnet/training/spec.py`` for the contract."""
