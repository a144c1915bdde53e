"""bnlab.experiments (being built)."""
