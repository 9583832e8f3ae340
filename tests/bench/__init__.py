"""The token-rotation benchmark (``make bench``): tooling for measuring, kept with the test
support code, out of the domain app and the library.

Token rotation measured four ways on one PostgreSQL database, in one invocation, and
``runjob --workers N`` in both modes beside them. The
reference is the database's own limit: one ``UPDATE`` of every row. Against it: the
``runjob`` command with tokens made in Python, the same with ``--sql-side`` (tokens made by
``gen_random_uuid()``), and what a first attempt usually is (load model instances, set the
field, ``bulk_update``). Each approach starts from a fresh table of the same size, so that
none pays for another's dead rows or dirty pages. The commands run as real subprocesses:
their wall time includes start-up, as an operator would see it, and their peak RSS is the
kernel's figure for that one process, not an estimate.

It measures; it does not judge. The goals are printed as PASS or MISS and never fail the
command: a figure from a shared two-core machine is evidence, not a test result.

It uses the library only as an operator does: ``runjob`` on the command line, its JSON
events for the run's figures. Destructive: every approach empties ``tickets_ticket``.

  __main__.py, cli.py   the entry point: options, the safety question, the report
  run.py                the whole benchmark: rounds, fresh tables, memory probes
  approaches.py         the ways of rotating the tokens, one small class each
  measure.py            a command in its own process: wall time, peak RSS (per process of
                        its tree, for runjob --workers N), its events; WAL
  load.py               runs under a pgbench load: the ETA's, the live load's latency
  eta.py, latency.py    their arithmetic (pure)
  table.py              the database and the fresh tickets table each approach starts from
  machine.py            what the figures were measured on
  report.py             the arithmetic, the goals (PASS/MISS) and the table
"""
