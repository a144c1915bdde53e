"""bnlab.train (being built)."""
