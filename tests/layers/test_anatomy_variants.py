"""The anatomy variants (layers/*/anatomy.py): each a real app giving the ladder's answer, one feature apart.

Parametrised over the registry (:func:`layercake.anatomy.ladders`), so a ladder another
layer registers later is checked the same way without editing this file.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import httpx
import pytest

from layercake.anatomy import Ladder, Step, call_once, get_ladder, ladders
from layers import LAYERS
from servers.registry import ServerOptions
from servers.supervise import start_server
from tests.layers.anatomy_dispatch import HEADER

PROJECT = Path(__file__).resolve().parents[2]
LADDERS = {name: get_ladder(name) for name in ladders()}
STEPS = [(ladder, step) for ladder in LADDERS.values() for step in ladder.steps]
STEP_IDS = [f"{ladder.layer}/{step.key}" for ladder, step in STEPS]


def test_the_four_ladders_are_registered_in_ladder_order() -> None:
    names = list(ladders())
    assert {"werkzeug", "flask", "starlette", "fastapi"} <= set(names)
    known = [n for n in names if n in LAYERS]
    assert known == [n for n in LAYERS if n in known]


@pytest.mark.parametrize("ladder", LADDERS.values(), ids=LADDERS)
def test_each_step_changes_exactly_one_feature(ladder: Ladder) -> None:
    features = ladder.features()
    assert ladder.steps[0].adds and not ladder.steps[0].includes, "the first step is the baseline"
    for i in range(1, len(ladder.steps)):
        step, before, after = ladder.steps[i], features[i - 1], features[i]
        if step.adds:
            assert step.adds not in before, f"{step.key} adds {step.adds!r}, which an earlier step brought"
            assert after - before == {step.adds, *step.includes} and not before - after
        else:
            assert step.removes in before, f"{step.key} removes {step.removes!r}, which no earlier step brought"
            assert before - after == {step.removes} and not after - before
    # A step that is really the same app as the one before it would measure nothing.
    bodies = [tuple(text.strip() for _, text in s.code()) for s in ladder.steps]
    assert len(set(bodies)) == len(bodies), "two steps build the same code"


@pytest.mark.parametrize(("ladder", "step"), STEPS, ids=STEP_IDS)
def test_every_variant_says_what_it_adds(ladder: Ladder, step: Step) -> None:
    assert step.title and len(step.title) < 160, f"{step.key}: the docstring's first line is the step's title"
    path, first, last = step.source
    assert path.is_relative_to(PROJECT / "layers") and path.name == "anatomy.py"
    assert step.code(), f"{step.key}: no code below the docstring"
    # Defined at module level (so the site can link to it and servers can import it).
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert step.key in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert inspect.signature(step.build).parameters == {}


@pytest.mark.parametrize(("ladder", "step"), STEPS, ids=STEP_IDS)
def test_every_variant_gives_the_answer_in_process(ladder: Ladder, step: Step) -> None:
    status, content_type, body = call_once(ladder.interface, step.build(), ladder.request)
    assert ladder.answer.problem(status, content_type, body) is None


@pytest.mark.parametrize("ladder", LADDERS.values(), ids=LADDERS)
def test_a_wrong_request_is_not_the_answer(ladder: Ladder) -> None:
    """The check can fail: the last variant asked for another path does not give the answer."""
    from dataclasses import replace

    wrong = replace(ladder.request, path="/items/x?q=cake")
    status, content_type, body = call_once(ladder.interface, ladder.steps[-1].build(), wrong)
    assert status >= 400 and ladder.answer.problem(status, content_type, body) is not None


@pytest.fixture(
    scope="module",
    params=[("asgi", "uvicorn", "bare_asgi"), ("wsgi", "waitress", "bare_wsgi")],
    ids=["uvicorn", "waitress"],
)
def dispatcher(request: pytest.FixtureRequest):
    interface, server, layer = request.param
    opts = ServerOptions(port=0, app_target=f"tests.layers.anatomy_dispatch:{interface}")
    with start_server(server, layer, opts) as running:
        yield interface, running.url


def test_every_variant_gives_the_answer_on_a_real_server(dispatcher: tuple[str, str]) -> None:
    interface, url = dispatcher
    checked = 0
    with httpx.Client(base_url=url, timeout=10) as client:
        for ladder, step in STEPS:
            if ladder.interface != interface:
                continue
            req = ladder.request
            headers = {"content-type": req.content_type, HEADER: f"{ladder.layer}/{step.key}"}
            resp = client.request(req.method, req.path, content=req.body, headers=headers)
            problem = ladder.answer.problem(resp.status_code, resp.headers.get("content-type", ""), resp.content)
            assert problem is None, f"{ladder.layer}/{step.key} over HTTP: {problem}"
            checked += 1
    assert checked >= 10
