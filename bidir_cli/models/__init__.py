"""Models: the one to train (``build.py``: a hub id, a local folder, or a StaticEmbedding from a tokenizer) and
the one to evaluate or mine with (``load.py``: a run directory, a folder or a hub id, with one clear message
when it cannot load), and a model's identity (a fingerprint of its files).

Imports the config's schema and runs (a run directory's model folder); nothing else of bidir's parts.
"""
