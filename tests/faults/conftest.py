"""Fixtures of the fault tests: ``procs`` (live runner processes) and ``rotation_audit``
(which counts on both databases) are shared, in tests/conftest.py."""
