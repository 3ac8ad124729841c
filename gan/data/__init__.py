"""Datasets: built-in data (prepare), validation and resizing (preprocess), tensor shards."""
