"""Evaluation: one measurement core (core: sampling, scoring, protocol) over torch-fidelity's
functions without its pickle cache (fidelity, feature_cache), the offline classifier and the
extractors, the evaluate stage and translation evaluation that use it, protocols."""
