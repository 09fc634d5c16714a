"""In-process counters: deterministic, attributed to the right package, and larger for layers that do more."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import pytest

from layercake.bench.costs import (
    PACKAGES,
    measure,
    package_of_c_function,
    package_of_file,
    package_of_module,
    quick_ladder,
)

PROJECT = Path(__file__).resolve().parents[2]


def test_files_are_attributed_to_packages() -> None:
    import flask
    import starlette.routing

    assert package_of_file(str(PROJECT / "layers" / "fastapi" / "app.py")) == "layer"
    assert package_of_file(str(PROJECT / "layers" / "shared" / "store.py")) == "layer"
    assert package_of_file(str(PROJECT / "servers" / "core" / "limits.py")) == "server"
    assert package_of_file(starlette.routing.__file__) == "starlette"
    assert package_of_file(flask.__file__) == "flask"
    assert package_of_file(str(Path(sysconfig.get_paths()["stdlib"]) / "json" / "encoder.py")) == "stdlib"
    assert package_of_file("<frozen importlib._bootstrap>") == "stdlib"
    assert package_of_file("/somewhere/else.py") == "other"


def test_c_functions_are_attributed_by_module() -> None:
    import pydantic_core

    assert package_of_module("pydantic_core._pydantic_core") == "pydantic"
    assert package_of_module("builtins") == "stdlib"
    assert package_of_module("_json") == "stdlib"
    assert package_of_c_function(len, "x.py") == "stdlib"
    validator = pydantic_core.SchemaValidator(pydantic_core.core_schema.int_schema())
    assert package_of_c_function(validator.validate_python, "x.py") == "pydantic"
    assert package_of_c_function(sys.intern, "x.py") == "stdlib"


def _counters(layer: str, endpoints: list[str]) -> list[dict]:
    return [c.counters for c in measure(layer, endpoints, seconds=0.01)]


@pytest.mark.parametrize("layer", ["bare_wsgi", "flask", "bare_asgi", "fastapi"])
def test_two_runs_give_identical_counts(layer: str) -> None:
    first, second = _counters(layer, ["json", "create"]), _counters(layer, ["json", "create"])
    for a, b in zip(first, second, strict=True):
        for key in ("calls", "c_calls", "lines"):
            assert a[key] == b[key], key
        assert {p: (n["calls"], n["c_calls"], n["lines"]) for p, n in a["by_package"].items()} == {
            p: (n["calls"], n["c_calls"], n["lines"]) for p, n in b["by_package"].items()
        }


def test_a_layer_that_does_more_counts_more() -> None:
    rows = {r.layer: r for r in quick_ladder(seconds_per_layer=0.01, endpoint="json")}
    assert list(rows) == [
        "bare_wsgi",
        "werkzeug",
        "flask",
        "bare_asgi",
        "starlette",
        "fastapi",
        "django",
        "django_asgi",
    ]
    assert rows["bare_wsgi"].calls < rows["django"].calls < rows["django_asgi"].calls
    assert rows["django"].by_package["django"]["calls"] > 0 and rows["django_asgi"].by_package["asgiref"]["calls"] > 0
    assert rows["bare_asgi"].calls < rows["starlette"].calls < rows["fastapi"].calls
    assert rows["bare_wsgi"].calls < rows["werkzeug"].calls < rows["flask"].calls
    assert rows["bare_asgi"].lines < rows["fastapi"].lines
    # Each framework's own code shows up under its own name, and only there.
    assert rows["fastapi"].by_package["fastapi"]["calls"] > 0 and "fastapi" not in rows["starlette"].by_package
    assert rows["flask"].by_package["flask"]["calls"] > 0 and "werkzeug" not in rows["bare_wsgi"].by_package
    assert rows["bare_asgi"].by_package["layer"]["calls"] > 0
    assert set(rows["fastapi"].by_package) <= set(PACKAGES)
    assert rows["bare_asgi"].ratio_to_bare == 1.0


def test_a_wrong_status_refuses_to_measure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from layercake.errors import LayercakeError

    (tmp_path / "brokenapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('500 Internal Server Error', [('Content-Type', 'text/plain')])\n"
        "    return [b'no']\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(LayercakeError, match="expected 200"):
        measure("brokenapp:app", ["plaintext"], seconds=0.01, interface="wsgi")


@pytest.mark.parametrize("name, framework", [("bare_wsgi@asgi", "layer"), ("bare_asgi@wsgi", "layer")])
def test_a_bridged_layer_counts_the_bridge(name: str, framework: str) -> None:
    (cost,) = measure(name, ["json"], seconds=0.01)
    packages = cost.counters["by_package"]
    assert cost.status == 200
    assert packages["a2wsgi"]["calls"] > 0  # a2wsgi's own middleware
    assert packages["server"]["calls"] > 0  # servers/bridges.py, our side of the bridge
    assert packages[framework]["calls"] > 0
    (native,) = measure(name.partition("@")[0], ["json"], seconds=0.01)
    assert cost.counters["calls"] > native.counters["calls"]


FASTAPI_DEF = """
from fastapi import FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()


@app.get("/json", response_model=None)
def json_hello() -> JSONResponse:  # a plain def: run in anyio's worker thread
    return JSONResponse({"message": "Hello, World!"})
"""


def test_a_fastapi_def_endpoint_is_exactly_one_thread_hop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "defapp.py").write_text(FASTAPI_DEF)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    (cost,) = measure("defapp:app", ["json"], seconds=0.01, interface="asgi")
    assert cost.counters["thread_hops"] == 1


@pytest.mark.parametrize("layer", ["bare_wsgi", "flask", "fastapi", "django"])
def test_layers_that_stay_on_their_thread_make_no_hop(layer: str) -> None:
    assert all(c["thread_hops"] == 0 for c in _counters(layer, ["json", "create"]))


def test_django_on_asgi_hops_for_its_sync_parts() -> None:
    # request_started's and request_finished's sync receivers (sync_to_async each), and the
    # per-request executor's shutdown: several, whatever the view (an async one here).
    assert all(c["thread_hops"] >= 2 for c in _counters("django_asgi", ["json", "create"]))
