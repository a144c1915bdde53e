"""bnlab.report (being built)."""
