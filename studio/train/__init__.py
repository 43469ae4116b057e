"""Training: caches, memory recipe, loss, checkpoints, the loop."""
