"""bnlab.results (being built)."""
