"""``bidir experiment``: the experiment file's schema (``spec.py``), its cells and their state (``cells.py``;
a cell's identity in ``identity.py``), how a cell's commands run (``executors.py``: processes, or this
process for tests), the report (``report.py``), the page of several experiments (``page.py``) and the command
(``command.py``).

Composes runs through the cell interface (``bidir train`` and ``bidir eval`` commands, run directories, results
files): it never builds a model or a loss itself, so it imports neither models, losses nor data.
"""
