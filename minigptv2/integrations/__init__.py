"""Doors into other ecosystems, over the same model code.

* ``registration.py`` — makes ``AutoConfig``, ``AutoModelForImageTextToText``, ``AutoProcessor`` and
  ``pipeline("image-text-to-text")`` open our folders, registered when ``minigptv2`` is imported
  (lazily: nothing from transformers is imported until the caller imports it).
* ``hf_config.py``, ``hf_model.py``, ``hf_processor.py`` — the transformers classes themselves.
* ``lmms.py`` — an lmms-eval model (``pip install -e ".[lmms]"``), and ``lmms_task.py`` a small
  Shapes task for it that needs no download.
"""
