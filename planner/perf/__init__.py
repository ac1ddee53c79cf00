"""Performance models: step times of GPU, LPU and fixed-rate replicas, and their calibration."""
