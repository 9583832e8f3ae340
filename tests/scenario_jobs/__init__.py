"""Small jobs for fault scenarios, found by real ``runjob`` processes through
``BATCHJOBS_EXTRA_JOB_PACKAGES``. Each is steered by environment variables so that one
module serves a scenario without a test hook in the library."""
