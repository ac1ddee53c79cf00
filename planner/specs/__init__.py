"""Frozen specs of hardware, models and their validation errors."""
