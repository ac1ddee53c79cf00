"""Typed application API: specs in, typed results out (no Hydra, no printing)."""
