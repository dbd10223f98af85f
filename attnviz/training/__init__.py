"""Training: its config, the loop, the one evaluation, runs and their registry, presets, checkpoints, devices."""
