"""bnlab.models (being built)."""
