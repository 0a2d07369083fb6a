"""The persona store: an application's users' preferences in, always-current personas and
judges out (SQLite by default, PostgreSQL by URL).

Preferences arrive one at a time or in batches (:meth:`PersonaStore.add_preferences`,
idempotent); background jobs judge each new preference with the persona current when it
arrived (prequential accuracy), then fit, revise or refit the persona by
:class:`UpdatePolicy`; :meth:`PersonaStore.judge`, :meth:`~PersonaStore.rank` and
:meth:`~PersonaStore.generation_messages` use the newest version. Every version is kept
(:meth:`~PersonaStore.history`) and exports as the same ``PersonalizedJudge`` JSON that
``personae fit`` writes.
"""

from personae.errors import UnknownUserError
from personae.store._api import API_METHODS, API_SCOPES, AsyncStoreAPI, StoreAPI
from personae.store._audit import AuditEntry, acting_as
from personae.store._backends import JudgeBackend, LLMJudgeBackend, RewardModelBackend
from personae.store._jobs import Job
from personae.store._policy import UpdatePolicy
from personae.store._store import (
    AddResult,
    AsyncPersonaStore,
    PersonaState,
    PersonaStore,
    PersonaVersion,
    PreferenceEvidence,
    Ranking,
    UserSummary,
    content_hash,
)
from personae.store._tokens import SCOPES, AccessToken, AccessTokens, TokenGrant

__all__ = [
    "API_METHODS",
    "API_SCOPES",
    "AsyncStoreAPI",
    "StoreAPI",
    "SCOPES",
    "AccessToken",
    "AccessTokens",
    "AuditEntry",
    "AddResult",
    "AsyncPersonaStore",
    "Job",
    "JudgeBackend",
    "LLMJudgeBackend",
    "PersonaState",
    "PersonaStore",
    "PersonaVersion",
    "PreferenceEvidence",
    "Ranking",
    "RewardModelBackend",
    "UnknownUserError",
    "UpdatePolicy",
    "TokenGrant",
    "UserSummary",
    "acting_as",
    "content_hash",
]
