"""``bidir experiment``: the experiment file's schema (``spec.py``), its cells and their state (``cells.py``;
a cell's identity in ``identity.py``), the selection stage by stage (``selection.py``), a sequential design's looks
and decisions (``sequential.py``), the design hash (``design.py``), every cell checked before anything runs
(``validate.py``), how a cell's commands run (``executors.py``: processes, torchrun, or this process for tests), a
cell's claim (``locks.py``), where every cell stands (``status.py``), running cells here or as SLURM job arrays
(``runner.py``, ``slurm.py``), the report (``report.py`` with ``comparisons.py``, ``selection_report.py`` and
``sequential_report.py``), the page of several experiments (``page.py``) and the command (``command.py``).

Composes runs through the cell interface (``bidir train`` and ``bidir eval`` commands, run directories, results
files): it never builds a model or a loss itself, so it imports neither models, losses nor data.
"""
