"""A job module whose code raises at import, as a half-finished edit would."""

raise RuntimeError("boom at import\nsecond line that is not reported")
