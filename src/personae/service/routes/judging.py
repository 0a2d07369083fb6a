"""Judging for a user: which of two responses, the best of several, a prompt to write with.

No ``from __future__ import annotations`` here: FastAPI reads the annotations at definition time.
"""

from typing import Annotated

from fastapi import APIRouter

from personae.programs import Verdict
from personae.service._admission import JUDGE_SLOT
from personae.service._models import GenerationPrompt, JudgeRequest, RankRequest, prompt_text
from personae.service.deps import LM_ERRORS, NOT_FOUND, Timed, UserId, serves
from personae.store import PersonaStore, Ranking

__all__ = ["router"]

router = APIRouter(tags=["judging"])


@router.post("/v1/users/{user_id}/judge", response_model=Verdict, responses=LM_ERRORS, dependencies=[JUDGE_SLOT])
def judge(user_id: UserId, body: JudgeRequest, tenant: Annotated[PersonaStore, serves("judge")],
          timed: Timed) -> Verdict:
    """Which response the user prefers ("A" or "B"), with its probability, by the current persona.
    ``Server-Timing: store;dur=MS`` says how long the store and its judge took (not the wait for a
    judge slot: 503 ``overloaded`` when the judge's queue is full)."""
    return timed(lambda: tenant.judge(user_id, prompt_text(body.prompt), body.response_a, body.response_b,
                                      abstain_below=body.abstain_below))


@router.post("/v1/users/{user_id}/rank", response_model=Ranking, responses=LM_ERRORS, dependencies=[JUDGE_SLOT])
def rank(user_id: UserId, body: RankRequest, tenant: Annotated[PersonaStore, serves("rank")], timed: Timed) -> Ranking:
    """The best of several drafts for the user, and their order (``Server-Timing`` as for judge)."""
    return timed(lambda: tenant.rank(user_id, prompt_text(body.prompt), body.candidates))


@router.get("/v1/users/{user_id}/generation-prompt", response_model=GenerationPrompt, responses=NOT_FOUND)
def generation_prompt(user_id: UserId,
                      tenant: Annotated[PersonaStore, serves("generation_messages")]) -> GenerationPrompt:
    """A system prompt for writing responses this user prefers (chat messages)."""
    state = tenant.persona(user_id)   # one read: the prompt and its version agree
    return GenerationPrompt(state.generation_messages(), state.version, state.personalization)
