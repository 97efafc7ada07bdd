"""Training and evaluation data: one reader per source, all emitting ``Sample``.

``shapes.py`` holds the synthetic Shapes world used by the shipped small model and by the tests.
"""

from minigptv2.data.sample import Sample

__all__ = ["Sample"]
