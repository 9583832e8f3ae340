"""Jobs shown in the docs (see ``tests/docs_examples/__init__.py``)."""
