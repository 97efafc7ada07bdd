"""Training: one explicit loop (``loop.py``) driven by stage configs (``config.py``)."""
