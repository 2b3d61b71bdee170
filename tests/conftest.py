"""Shared fixtures: the real servers live in tests/servers.py and tests/vm.py."""

pytest_plugins = ["tests.servers"]
