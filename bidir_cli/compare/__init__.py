"""``bidir compare``: the comparison's types (``comparison.py``), its statistics (``stats/``: the run-level t
test, the sign-flip test, power), the rows of training measurements and settings (``meta_rows.py``), building
a comparison from runs and results files (``build.py``), rendering it (``render.py``: table, markdown, csv,
json, plot) and the command (``command.py``).

Reads results files and meta.json through runs only: never imports train, eval, losses, models, data or
experiment, so that comparing runs never loads a model.
"""
