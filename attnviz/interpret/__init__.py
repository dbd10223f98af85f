"""Interpretation: attention patterns by name, head statistics, rollout, ablation, one head by hand, positional
analysis, a user's input run, decoding views, model comparison, export."""
