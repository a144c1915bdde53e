"""bnlab.claims (being built)."""
