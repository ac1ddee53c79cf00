"""Ready-made studies, shipped inside the installed package as ``planner.scenarios``.

Only YAML lives here; this file makes the directory a package so that
``importlib.resources.files("planner.scenarios")`` finds it in a checkout and in a wheel alike.
"""
