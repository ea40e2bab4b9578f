"""``bidir train``: the recipe top to bottom (``recipe.py``: config, data, model, loss, trainer, resume, the
final evaluation), its trainer callbacks (``callbacks.py``: train_log.jsonl, progress), the model card
(``model_card.py``), the push to the hub (``hub.py``), retrieval evaluation during training
(``evaluator.py``), stopping early (``stopping.py``) and a config's problems found without its data
(``preflight.py``).

Composes config, data, models, losses, eval and runs; never imports experiment or compare.
"""
