"""A job package with one good module and two that fail to import (see test_registry.py
and test_commands.py): the good job must stay usable, and the broken ones be reported."""
