"""Economics: TCO, capacity curves, sizing searches and ROI with Monte Carlo."""
