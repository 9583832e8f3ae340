"""Models for the library's own tests, installed only by ``tests.settings``.

The library must not lean on the domain (``tickets``) to prove what it does, and some of
what it must handle (a filter across a to-many relation, multi-table inheritance) has no
place in the domain at all.
"""
