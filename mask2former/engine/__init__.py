"""Training and evaluation loops, optimiser set-up, checkpoints, multi-process helpers."""
