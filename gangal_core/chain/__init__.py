"""The chained GAN (Fussell & Moews 2019): a DCGAN at 64x64, refined by StackGAN Stage-II to 128x128.

- :mod:`.networks`: the DCGAN's generator and discriminator, and the :class:`Refiner` interface.
- :mod:`.trainers`: one GAN training loop, :class:`GANTrainer`, and what each stage changes.
- :mod:`.stages`: a trained stage on disk, and sampling a chain of stages.
- :mod:`.run`: what ``gangal train`` and ``gangal sample`` do.
"""

from .stages import STAGE_FORMAT, load_generator, read_stage_metadata, sample_chain, save_network
from .trainers import DCGANTrainer, DiscriminatorWonWarning, GANTrainer, RefinerTrainer, StageResult

__all__ = [
    "STAGE_FORMAT",
    "DCGANTrainer",
    "DiscriminatorWonWarning",
    "GANTrainer",
    "RefinerTrainer",
    "StageResult",
    "load_generator",
    "read_stage_metadata",
    "sample_chain",
    "save_network",
]
