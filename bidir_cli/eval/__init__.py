"""``bidir eval``: suites and their loaders (``suites.py``, ``loaders.py``: NanoBEIR, BEIR folders, suite
files), the retrieval dataset type (``retrieval.py``), encoding (``encode.py``), exact search (``search.py``),
the metrics (``metrics.py``), the corpus-embedding cache (``embedding_cache.py``), TREC run files
(``run_file.py``), the mteb cross-check (``mteb_check.py``), how the model is set up (``model_options.py``),
the command itself (``command.py``) and its table (``render.py``).

Imports models and runs; never train, compare or experiment.
"""
