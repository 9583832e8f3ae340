"""Modules whose name starts with an underscore are helpers, not jobs: never imported."""

raise AssertionError("discovery imported a private module")
