"""Evaluation: metrics by name (registry: what each needs, the figures it writes, which way is
better), the measurement settings protocol.json is written from (settings) and what of them
must match for a comparison (protocol), one measurement core (core: sampling, scoring) over
torch-fidelity's functions without its pickle cache (fidelity, feature_cache), the offline
extractors (classifier, autoencoder for unlabelled data, their shared convnet,
extractor_quality: too weak to judge?) and their registration (extractors), the classifier's
class-aware figures (classes), the real-vs-real floor (floors), the evaluate stage and
translation evaluation that use it."""
