"""The example job of docs/writing-a-job.md and the guide's tests for it.

The guide shows these files as they are (tests/test_docs.py compares them), so the code a
reader copies is code that runs. The job lives in ``jobs/`` here, a package the project
does not list in ``BATCHJOBS_JOB_PACKAGES``: it is not one of the project's jobs unless
``BATCHJOBS_EXTRA_JOB_PACKAGES=tests.docs_examples.jobs`` adds it.
"""
