"""A job module that needs a package nobody installed."""

import batchjobs_no_such_dependency  # noqa: F401
