"""The store's update policy: when a user gets a persona, and how it is kept current."""

from __future__ import annotations

from dataclasses import dataclass

from personae.errors import ConfigError

__all__ = ["UpdatePolicy"]


@dataclass(frozen=True)
class UpdatePolicy:
    """How a :class:`~personae.store.PersonaStore` learns from preferences as they arrive.

    - **Cold start**: below ``min_pairs`` preferences there is no persona; the LLM judge reads
      the preferences themselves (``memory_judge``), the reward model judges without persona.
    - **First fit** at ``min_pairs``: SynthesizeMe's ``preset`` on the whole history, split by
      prompt with ``fractions`` (train, validation, test; the store tests nothing itself, its
      test is prequential). A history too narrow for a validation side still gets a persona,
      with the first verified traces as demonstrations and no demo search.
    - **Incremental update**: the new pairs get verified reasoning and the persona is revised
      with the verified traces; the demonstrations stay. A pair whose prequential judgment
      predicted the choice keeps that reasoning as its trace (it was checked against the
      choice already); the others are explained anew (``verify_attempts`` each).
    - **Full refit** (demonstrations chosen again on validation) when the prequential accuracy
      since the last fit, over at least ``min_judged`` pairs, falls more than ``refit_margin``
      below the fitted validation accuracy; when ``refit_every`` pairs were learned
      incrementally since the last fit; or when a fit without validation can now have one.
    - **Prequential accuracy**: each new preference is judged by the version current when it
      arrived, before anything learns from it (``prequential=False`` saves those calls).
    - **Background**: updates are debounced per user (``debounce_s`` after the last add, at most
      ``max_delay_s`` after the first), run on ``concurrency`` worker threads, hold a lease of
      ``lease_s`` seconds that the worker renews (a crashed worker's job is taken up again once
      it expires), and a job whose LM calls fail is tried ``job_attempts`` times.
    """

    min_pairs: int = 4
    preset: str = "default"
    fractions: tuple[float, float, float] = (0.7, 0.3, 0.0)
    verify_attempts: int = 1
    refit_every: int = 16
    refit_margin: float = 0.15
    min_judged: int = 6
    prequential: bool = True
    memory_judge: bool = True
    debounce_s: float = 2.0
    max_delay_s: float = 30.0
    concurrency: int = 2
    lease_s: float = 60.0
    job_attempts: int = 3
    poll_s: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_pairs < 2:
            raise ConfigError("min_pairs must be at least 2")
        if self.concurrency < 1 or self.job_attempts < 1 or self.verify_attempts < 1:
            raise ConfigError("concurrency, job_attempts and verify_attempts must be at least 1")
        if self.refit_every < 1 or self.min_judged < 1:
            raise ConfigError("refit_every and min_judged must be at least 1")
        if min(self.debounce_s, self.max_delay_s, self.poll_s) < 0 or self.lease_s <= 0:
            raise ConfigError("debounce_s, max_delay_s and poll_s must be >= 0, lease_s > 0")
