"""Model-assisted GAN calibration (Alonso-Monsalve & Whitehead 2020, sections III-VI).

Two phases, each a module:

1. :mod:`.pretraining`: an emulator E learns to mimic the simulator T over the declared
   parameter ranges (Fig. 3a); :mod:`.emulator` holds the trained emulator and its file.
2. :mod:`.gan`: the generator G of parameters learns, through the frozen emulator, to match the
   true images (eq. 2, Fig. 3b); :mod:`.result` turns its snapshots into the best-match
   distribution with standard errors.

Around them: :mod:`.networks` (the four networks and the interfaces a plugin implements),
:mod:`.batches` (seeded simulated batches), :mod:`.truth` (true sets from a known truth),
:mod:`.predictive` (the predictive check), :mod:`.report` (table and plots) and :mod:`.run`
(what ``gangal pretrain``, ``calibrate`` and ``emulate`` do).
"""

from .emulator import TrainedEmulator, load_emulator, save_emulator
from .gan import DISCRIMINATOR_INPUTS, TRAINING_RECIPES, calibrate, simulated_with_emulator_gradient
from .pretraining import PRETRAIN_RECIPES, pretrain
from .result import (
    CalibrationResult,
    autocorrelation_time,
    recovery,
    snapshot_mixture,
    summarise,
    within_bar,
)
from .truth import make_true_set, parse_truth

__all__ = [
    "DISCRIMINATOR_INPUTS",
    "PRETRAIN_RECIPES",
    "TRAINING_RECIPES",
    "CalibrationResult",
    "TrainedEmulator",
    "autocorrelation_time",
    "calibrate",
    "load_emulator",
    "make_true_set",
    "parse_truth",
    "pretrain",
    "recovery",
    "save_emulator",
    "simulated_with_emulator_gradient",
    "snapshot_mixture",
    "summarise",
    "within_bar",
]
