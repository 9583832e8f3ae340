"""A job package for the registry's discovery tests (see test_registry.py)."""
