"""Planning a calibration that may make at most ``--budget`` simulator images.

Without a budget, gangal simulates freely: every pretraining batch is new, and the
discriminator sees fresh simulator images T(G(z)) at every step (about 1.8 million images by
default).  With one, the simulations are spent where they matter:

1. **The predictive check** keeps a tenth of the budget (at least enough for the check to
   mean something, at most what it uses without a budget).
2. **A first bank** over the declared ranges takes most of the rest; the emulator trains on it
   for epochs, with a held-out part to measure and keep its best state.
3. **Rounds** spend the remainder near the current best match: parameters drawn from the
   generator, their spread widened so the emulator also learns the neighbourhood the
   generator is still exploring.  The emulator is refined on every simulation so far, and the
   generator continues from where it was.

The discriminator then compares the true images with emulated images E(G(z)), which cost no
simulator calls, and in the rounds with the simulations of the generator's own draws, carried
along by the emulator as the generator learns (``"anchored"`` input,
:mod:`gangal_core.calibration.rounds`).  :func:`plan_budget` splits the budget; its shares
are defaults a user can override (``--rounds``, ``--first-bank``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gangal_core.errors import ConfigError

from .predictive import MIN_IMAGES, PREDICTIVE_IMAGES

__all__ = ["BudgetPlan", "plan_budget", "plan_for_bank"]
#: Simulations in each round after a bank, when no budget sets them.
ROUND_WITHOUT_BUDGET = 2000
#: The share of a budget the predictive check keeps.
PREDICTIVE_SHARE = 0.1
#: The share of the rest the first bank takes when there are rounds.
FIRST_BANK_SHARE = 0.6
#: The fewest simulations a bank or a round may hold: below this, an emulator cannot learn.
SMALLEST_BANK = 256


@dataclass(frozen=True)
class BudgetPlan:
    """How a budget of simulator images is spent.

    Attributes
    ----------
    budget : int or None
        The most simulator images the run may make (None: no limit).
    first_bank : int
        Simulations over the declared ranges, before any training.
    rounds : tuple of int
        Simulations in each later round, drawn near the best match.
    predictive : int
        Simulations at the best match for the predictive check (0: no check).
    """

    budget: int | None
    first_bank: int
    rounds: tuple[int, ...]
    predictive: int

    @property
    def total(self) -> int:
        """The images the plan makes: never more than :attr:`budget`."""
        return self.first_bank + sum(self.rounds) + self.predictive

    def to_dict(self) -> dict[str, object]:
        """The plan as written to ``calibration.json``."""
        return {**asdict(self), "rounds": list(self.rounds)}


def plan_budget(
    budget: int,
    *,
    rounds: int = 3,
    first_bank: float = FIRST_BANK_SHARE,
    predictive_check: bool = True,
) -> BudgetPlan:
    """Split ``budget`` simulator images between the first bank, the rounds and the check.

    Parameters
    ----------
    budget : int
        The most simulator images the run may make.
    rounds : int, optional
        Rounds after the first bank (default 3); 0 spends everything on the first bank.
    first_bank : float, optional
        The first bank's share of what the predictive check leaves (default 0.6), when there
        are rounds; the rounds share the rest equally.
    predictive_check : bool, optional
        Keep simulations for the predictive check (default True).

    Returns
    -------
    BudgetPlan

    Raises
    ------
    ConfigError
        The budget is too small for a first bank of :data:`SMALLEST_BANK` images and rounds of
        as many; the message says the smallest budget that works.
    """
    if rounds < 0:
        raise ConfigError(f"--rounds: expected 0 or more, found {rounds}.")
    if not 0 < first_bank <= 1:
        raise ConfigError(f"--first-bank: expected a share in (0, 1], found {first_bank}.")
    predictive = _predictive_images(budget) if predictive_check else 0
    rest = budget - predictive
    if rest < SMALLEST_BANK * (1 + rounds):
        smallest = SMALLEST_BANK * (1 + rounds)
        while predictive_check and smallest - _predictive_images(smallest) < SMALLEST_BANK * (1 + rounds):
            smallest += 1
        raise ConfigError(
            f"--budget {budget:,}: too small for a first bank and {rounds} round(s) of at least "
            f"{SMALLEST_BANK} simulations each" + (" and the predictive check" if predictive else "")
            + f"; give at least {smallest:,}, or fewer --rounds."
        )
    first = rest if rounds == 0 else max(SMALLEST_BANK, round(first_bank * rest))
    first = min(first, rest - SMALLEST_BANK * rounds)
    share, extra = divmod(rest - first, rounds) if rounds else (0, 0)
    later = tuple(share + (1 if k < extra else 0) for k in range(rounds))
    return BudgetPlan(budget=budget, first_bank=first, rounds=later, predictive=predictive)


def plan_for_bank(budget: int | None, *, rounds: int = 0, predictive_check: bool = True) -> BudgetPlan:
    """The plan of a run that starts from a stored bank: no first bank; rounds and the check.

    With a budget, the predictive check takes its share and the rounds split the rest; without
    one, each round makes :data:`ROUND_WITHOUT_BUDGET` simulations and the check
    :data:`PREDICTIVE_IMAGES`.
    """
    if rounds < 0:
        raise ConfigError(f"--rounds: expected 0 or more, found {rounds}.")
    if budget is None:
        predictive = PREDICTIVE_IMAGES if predictive_check else 0
        return BudgetPlan(None, 0, (ROUND_WITHOUT_BUDGET,) * rounds, predictive)
    predictive = _predictive_images(budget) if predictive_check else 0
    rest = budget - predictive
    if rounds and rest < SMALLEST_BANK * rounds:
        raise ConfigError(
            f"--budget {budget:,}: too small for {rounds} round(s) of at least {SMALLEST_BANK} simulations"
            + (" and the predictive check" if predictive else "") + "; give more, or fewer --rounds."
        )
    if predictive > budget:
        predictive = budget
    share, extra = divmod(rest, rounds) if rounds else (0, 0)
    return BudgetPlan(budget, 0, tuple(share + (k < extra) for k in range(rounds)), predictive)


def _predictive_images(budget: int) -> int:
    return min(PREDICTIVE_IMAGES, max(2 * MIN_IMAGES, round(PREDICTIVE_SHARE * budget)))
