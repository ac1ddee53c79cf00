"""The Hydra config tree, shipped inside the installed package as ``planner.conf``.

Only YAML lives here; this file makes the directory a package so that
``importlib.resources.files("planner.conf")`` finds it in a checkout and in a wheel alike.
"""
