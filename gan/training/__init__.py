"""The generic training loop and what it keeps: EMA, checkpoints, logs, sample grids."""
