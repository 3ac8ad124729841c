"""Evaluation: one measurement core (core: sampling, scoring, protocol) over torch-fidelity's
functions without its pickle cache (fidelity, feature_cache), the offline extractors (classifier,
autoencoder for unlabelled data, their shared convnet, extractor_quality: too weak to judge?)
and their registration (extractors), the real-vs-real floor (floors), the evaluate stage and
translation evaluation that use it, protocols."""
