"""Training, evaluation and data: readers, the procedural benchmark, losses and the training loop."""
