"""The Music Gesture model's parts and the baselines, one module each (PyTorch)."""
