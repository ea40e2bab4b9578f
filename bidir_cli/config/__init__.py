"""The YAML config of ``bidir train``: its schema (``schema.py``: model, data, loss, evaluation; loading, ``--set``
overrides, every problem of a file at once) and its ``training`` section in sentence-transformers' own names
(``training.py``: the fields bidir reads, the one table of arguments bidir sets itself, the refused names).

Imports no torch, and of bidir's parts only the loss registry (``losses``, for the names a config may give).
"""
