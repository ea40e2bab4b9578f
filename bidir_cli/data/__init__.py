"""Training data: sources read from local files, the hub or the bundled demo set, validated and hashed
(``sources.py``), and hard negatives mined for them (``mining.py``, ``bidir mine``) with the record of how
(``mining_record.py``, the ``.mined.json`` sidecar).

Imports the config's schema, models (the miner's model) and runs (atomic writes, versions); never train,
eval, compare or experiment.
"""
