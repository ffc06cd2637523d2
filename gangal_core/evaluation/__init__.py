"""Judging generated images by physical measurements (Fussell & Moews 2019, section 3.2).

- :mod:`.evaluator`: the :class:`Evaluator` interface a plugin implements, and
  :class:`Measurements`.
- :mod:`.compare`: two measured sets side by side, and the closest-match analysis.
- :mod:`.run`: what ``gangal evaluate`` does.
"""

from .evaluator import OK, Evaluator, Measurements, validate_evaluator_class

__all__ = ["OK", "Evaluator", "Measurements", "validate_evaluator_class"]
