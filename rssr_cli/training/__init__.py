"""Training: data sampling (data.py), the training loop and its checkpoints (trainer.py)."""
