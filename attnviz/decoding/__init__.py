"""Decoding one token at a time through the KV cache: greedy, sampling, beam search, each step traced.

Below training (its probes decode greedily) and above the models and tokenizers.
"""
from attnviz.decoding.sampling import distribution, entropy
from attnviz.decoding.search import METHODS, Decoded, Step, beam_search, greedy, sample

__all__ = ["METHODS", "Decoded", "Step", "beam_search", "distribution", "entropy", "greedy", "sample"]
