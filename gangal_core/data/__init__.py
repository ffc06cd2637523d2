"""Real images for the chained GAN and for evaluation: data sources and their batches.

- :mod:`.sources`: the :class:`DataSource` interface a plugin implements, and opening one by
  name (``galaxyzoo:PATH``, ``synthetic``).
- :mod:`.batches`: shuffled, flipped minibatches at the resolutions a chain needs.
"""

from .batches import ImageBatches
from .sources import DataSource, downscale_nearest, open_data_source, parse_data_options, parse_data_spec

__all__ = [
    "DataSource",
    "ImageBatches",
    "downscale_nearest",
    "open_data_source",
    "parse_data_options",
    "parse_data_spec",
]
