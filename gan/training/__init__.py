"""The generic training loop and what it keeps: EMA, checkpoints, logs, sample grids and
metric snapshots (the best one for the export)."""
