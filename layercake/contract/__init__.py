"""The contract as executable cases (CONTRACT.md): the case table and the client that runs it over HTTP.

``cases`` holds every case and how a run goes; ``http_client`` talks to a real server.  The
names below are the public surface, so callers write ``from layercake.contract import ...``.
"""

from layercake.contract.cases import (
    CASES,
    GROUPS,
    Case,
    CaseResult,
    Client,
    ContractFailure,
    cases_for,
    check,
    run_case,
    run_cases,
    run_contract,
    summarize,
)
from layercake.contract.http_client import HTTPClient, HTTPWebSocket, raw_exchange

__all__ = [
    "CASES",
    "GROUPS",
    "Case",
    "CaseResult",
    "Client",
    "ContractFailure",
    "HTTPClient",
    "HTTPWebSocket",
    "cases_for",
    "check",
    "raw_exchange",
    "run_case",
    "run_cases",
    "run_contract",
    "summarize",
]
