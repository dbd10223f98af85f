"""Data: tokenizers (characters, sentencepiece), tasks and corpora with deterministic splits, padded batches."""
