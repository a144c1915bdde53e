"""bnlab.data (being built)."""
