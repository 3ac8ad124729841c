"""Evaluation: the offline classifier, torch-fidelity extractors, the evaluate stage, protocols."""
