"""Real parts to test against, for personae's own tests and benchmarks and for your test suites.

Each stands up something real on 127.0.0.1 and takes it down again, so a test exercises the
same code paths as production without a network, a key or a model:

* :class:`~personae.lm.ScriptedLM`: a real ``dspy.LM`` whose engine answers from a script, in
  the layout of whatever adapter is active (re-exported here);
* :func:`stub_server`: an OpenAI-compatible chat server whose answers a function decides;
* :func:`fault_server`: one that answers correctly until a :class:`Faults` plan makes it fail
  (HTTP 500 and 429, slow answers, non-JSON, truncated JSON, values outside a ``Literal``,
  dropped connections), recording every request;
* :class:`PostgresServer`: a throwaway PostgreSQL cluster from the machine's server binaries;
* :func:`serve_api`: ``personae serve-api`` as a real process on a free port
  (:func:`create_token` and :func:`tokens` manage its tenants' tokens).

::

    from personae.testing import ScriptedLM, fault_server, Faults

    with fault_server(Faults(rate=0.2)) as server:
        lm = get_lm("openai/any", api_base=server.api_base, api_key="test")
"""

from personae.lm import ScriptedCall, ScriptedLM
from personae.testing._faults import FAULT_KINDS, Faults, FaultServer, Served, fault_server
from personae.testing._postgres import PostgresServer, PostgresUnavailable, find_bindir
from personae.testing._service import ServiceProcess, create_token, serve_api, tokens
from personae.testing._stub import StubServer, output_fields, stub_server

__all__ = [
    "FAULT_KINDS",
    "FaultServer",
    "Faults",
    "PostgresServer",
    "PostgresUnavailable",
    "ScriptedCall",
    "ScriptedLM",
    "Served",
    "ServiceProcess",
    "StubServer",
    "create_token",
    "fault_server",
    "find_bindir",
    "output_fields",
    "serve_api",
    "stub_server",
    "tokens",
]
