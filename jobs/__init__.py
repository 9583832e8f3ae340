"""Concrete jobs, one module each; every module here is discovered by ``runjob``."""
