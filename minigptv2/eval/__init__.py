"""Evaluation: pure metric functions, one module per benchmark, and a runner."""
