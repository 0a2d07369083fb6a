"""The persona store's API, declared once.

:class:`StoreAPI` is what an application may ask of a persona store, wherever it lives:
:class:`~personae.store.PersonaStore` answers it in process, :class:`~personae.client.PersonaeClient`
over HTTP. :class:`AsyncStoreAPI` is the same API awaited
(:class:`~personae.store.AsyncPersonaStore`, :class:`~personae.client.AsyncPersonaeClient`). mypy
checks that all four satisfy them (:func:`_satisfied`), and a test that the two declarations
list the same methods with the same parameters; the service serves this API and no more.
:data:`API_SCOPES` says, beside the declaration, which token scope each method needs over the
service (its routes and MCP tools take their requirement from it).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from personae.data import PreferenceRecord
from personae.programs import PersonalizedJudge, Verdict

if TYPE_CHECKING:
    from personae.client import AsyncPersonaeClient, PersonaeClient
    from personae.store._jobs import Job
    from personae.store._store import AddResult, AsyncPersonaStore, PersonaState, PersonaStore, PersonaVersion, Ranking

__all__ = ["API_METHODS", "API_SCOPES", "AsyncStoreAPI", "StoreAPI"]


class StoreAPI(Protocol):
    """What an application may ask of a persona store (in process or over HTTP)."""

    def add_preferences(self, user_id: str, records: Iterable[PreferenceRecord | Mapping[str, Any]]) -> AddResult:
        """Store the user's new preferences (idempotent by id, else by content); the update job they queued."""
        ...

    def preferences(self, user_id: str) -> list[PreferenceRecord]:
        """The user's stored preferences, in the order they arrived."""
        ...

    def users(self, *, limit: int | None = None, after: str | None = None) -> list[str]:
        """The tenant's users in id order: at most ``limit``, those after ``after``."""
        ...

    def exists(self, user_id: str) -> bool:
        """Whether the tenant holds preferences or a persona for the user."""
        ...

    def persona(self, user_id: str) -> PersonaState:
        """The user's current persona, with its version, pairs seen and prequential accuracy."""
        ...

    def history(self, user_id: str) -> list[PersonaVersion]:
        """Every persona version of the user, oldest first, each with how and why it was made."""
        ...

    def fitted_judge(self, user_id: str, version: int | None = None) -> PersonalizedJudge | None:
        """The user's judge of a persona version (the newest by default); None before the first."""
        ...

    def export(self, user_id: str, path: str | os.PathLike[str] | None = None, *,
               version: int | None = None) -> PersonalizedJudge:
        """The user's judge (newest version unless ``version``), saved to ``path`` when given."""
        ...

    def forget(self, user_id: str) -> dict[str, int]:
        """Remove everything held on the user; how many rows of each table went."""
        ...

    def judge(self, user_id: str, prompt: str, response_a: str, response_b: str, *,
              abstain_below: float | None = None) -> Verdict:
        """Which of two responses the user prefers, judged in both orders by the current persona."""
        ...

    def rank(self, user_id: str, prompt: str, candidates: Sequence[str]) -> Ranking:
        """The best of several drafts for the user, and their order."""
        ...

    def generation_messages(self, user_id: str) -> list[dict[str, str]]:
        """A one-message system prompt to write responses this user prefers."""
        ...

    def job(self, job_id: str) -> Job | None:
        """The update job with this id (None if the tenant has no such job)."""
        ...

    def wait_job(self, job_id: str, timeout: float = 60.0, poll_s: float = 0.05) -> Job | None:
        """The job once done or failed, or as it stands when ``timeout`` runs out (None: no such job)."""
        ...


class AsyncStoreAPI(Protocol):
    """:class:`StoreAPI`, awaited: the same methods with the same parameters."""

    async def add_preferences(self, user_id: str,
                              records: Iterable[PreferenceRecord | Mapping[str, Any]]) -> AddResult:
        """See :meth:`StoreAPI.add_preferences`."""
        ...

    async def preferences(self, user_id: str) -> list[PreferenceRecord]:
        """See :meth:`StoreAPI.preferences`."""
        ...

    async def users(self, *, limit: int | None = None, after: str | None = None) -> list[str]:
        """See :meth:`StoreAPI.users`."""
        ...

    async def exists(self, user_id: str) -> bool:
        """See :meth:`StoreAPI.exists`."""
        ...

    async def persona(self, user_id: str) -> PersonaState:
        """See :meth:`StoreAPI.persona`."""
        ...

    async def history(self, user_id: str) -> list[PersonaVersion]:
        """See :meth:`StoreAPI.history`."""
        ...

    async def fitted_judge(self, user_id: str, version: int | None = None) -> PersonalizedJudge | None:
        """See :meth:`StoreAPI.fitted_judge`."""
        ...

    async def export(self, user_id: str, path: str | os.PathLike[str] | None = None, *,
                     version: int | None = None) -> PersonalizedJudge:
        """See :meth:`StoreAPI.export`."""
        ...

    async def forget(self, user_id: str) -> dict[str, int]:
        """See :meth:`StoreAPI.forget`."""
        ...

    async def judge(self, user_id: str, prompt: str, response_a: str, response_b: str, *,
                    abstain_below: float | None = None) -> Verdict:
        """See :meth:`StoreAPI.judge`."""
        ...

    async def rank(self, user_id: str, prompt: str, candidates: Sequence[str]) -> Ranking:
        """See :meth:`StoreAPI.rank`."""
        ...

    async def generation_messages(self, user_id: str) -> list[dict[str, str]]:
        """See :meth:`StoreAPI.generation_messages`."""
        ...

    async def job(self, job_id: str) -> Job | None:
        """See :meth:`StoreAPI.job`."""
        ...

    async def wait_job(self, job_id: str, timeout: float = 60.0, poll_s: float = 0.05) -> Job | None:
        """See :meth:`StoreAPI.wait_job`."""
        ...


API_METHODS: tuple[str, ...] = tuple(name for name, value in vars(StoreAPI).items()
                                     if inspect.isfunction(value) and not name.startswith("_"))
"""The declared methods' names, in declaration order."""

API_SCOPES: dict[str, str] = {
    "add_preferences": "write",
    "preferences": "read",
    "users": "read",
    "exists": "read",
    "persona": "read",
    "history": "read",
    "fitted_judge": "admin",        # the judge itself: what export hands out (over HTTP, the export route)
    "export": "admin",
    "forget": "admin",
    "judge": "read",                # judging changes nothing
    "rank": "read",
    "generation_messages": "read",
    "job": "read",
    "wait_job": "read",
}
"""The token scope each declared method needs over the service (``read``, ``write``, ``admin``;
a token holding ``admin`` may also do what ``read`` and ``write`` allow)."""


def _satisfied(store: PersonaStore, client: PersonaeClient, async_store: AsyncPersonaStore,
               async_client: AsyncPersonaeClient) -> None:  # pragma: no cover - read by mypy, never run
    """mypy's proof that the four surfaces offer the declared API."""
    surfaces: tuple[StoreAPI, StoreAPI, AsyncStoreAPI, AsyncStoreAPI] = (store, client, async_store, async_client)
    del surfaces
