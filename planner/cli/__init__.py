"""Console scripts: compose the config with Hydra, convert it, call the app, write, print."""
