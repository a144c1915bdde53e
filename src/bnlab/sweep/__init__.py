"""bnlab.sweep (being built)."""
