"""Everything a run leaves on disk, and its typed owners: the run directory's layout (``rundir.py``:
``RunDir``), ``meta.json`` (``meta.py``: ``RunMeta``), the environment a run records (``environment.py``:
versions, installed packages, CPU kernels, the code's git tree), results files (``results.py``: ``EvalResult``)
and the evaluation settings that name them (``settings.py``: ``EvalSettings``), ``train_log.jsonl``
(``train_log.py``: ``TrainLog``), and atomic writes (``atomic.py``).

Imports no recipe: nothing of train, data, losses, models, eval, compare, experiment or config.
"""
