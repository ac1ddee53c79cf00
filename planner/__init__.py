"""planner: discrete-event capacity planner for LLM-inference datacenters."""

from planner.native import install_guard as _install_guard

_install_guard()  # a compiled engine older than its sources is not used (planner.native)
