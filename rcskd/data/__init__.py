"""Data: sources, the prepare step (split, dedup, cache), transforms and intensity statistics."""
