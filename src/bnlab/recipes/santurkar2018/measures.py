"""Cards of Santurkar et al. 2018's measurement recipes (ICS, landscape, DLN; issue 12)."""
