"""The server registry: every entry starts for real, natively and through a bridge, and
stops with every process it started; bad input gets a clear error with the right status.

Servers are given the two tiny apps in ``tests/servers/apps.py`` (via
``ServerOptions.app_target``), so these tests check the servers and bridges, not the
layers -- the contract over real servers is ``test_grid.py``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import socket

import httpx
import pytest

from layercake.errors import LayercakeError, MissingPackage, UnknownName
from servers.registry import SERVERS, Requirement, ServerOptions, ServerSpec, default_server, get_server
from servers.supervise import ServerStartError, process_group_members, start_server

APPS = {"wsgi": ("bare_wsgi", "tests.servers.apps:wsgi_app"), "asgi": ("bare_asgi", "tests.servers.apps:asgi_app")}


def _skip_unless_runnable(spec: ServerSpec) -> None:
    if not spec.available:
        pytest.skip(f"{spec.name}: package {spec.missing.package!r} not installed")  # type: ignore[union-attr]
    if importlib.util.find_spec(spec.module) is None:
        pytest.skip(f"{spec.name}: module {spec.module} not found")


@pytest.fixture(params=list(SERVERS.values()), ids=list(SERVERS))
def spec(request: pytest.FixtureRequest) -> ServerSpec:
    return request.param


def test_registry_names_and_defaults() -> None:
    assert default_server("wsgi") == "scratch-wsgi" and default_server("asgi") == "scratch-asgi"
    assert {s.interface for s in SERVERS.values()} == {"wsgi", "asgi"}
    for name, spec in SERVERS.items():
        assert get_server(name) is spec and spec.name == name


def test_entry_describes_itself(spec: ServerSpec) -> None:
    assert spec.interfaces == (spec.interface,)
    assert spec.description and spec.parser and spec.concurrency
    assert spec.pattern().startswith(spec.program) and "MODULE:APP" in spec.pattern()
    other = "asgi" if spec.interface == "wsgi" else "wsgi"
    assert spec.bridge_for(spec.interface) is None
    assert spec.bridge_for(other) == f"{other}->{spec.interface}"
    assert spec.bridge_losses(spec.interface) == () and spec.bridge_losses(other)
    if spec.interface == "wsgi":
        assert not spec.capabilities.websockets and not spec.capabilities.lifespan


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_entry_serves_natively_and_through_a_bridge(spec: ServerSpec, interface: str) -> None:
    _skip_unless_runnable(spec)
    layer, target = APPS[interface]
    with start_server(spec, layer, ServerOptions(app_target=target)) as srv:
        assert srv.bridge == spec.bridge_for(interface)
        assert srv.url == f"http://127.0.0.1:{srv.port}"
        assert target in srv.native_command  # directly, or named in the bridge's environment variable
        r = httpx.get(srv.url + "/hello", timeout=10)
        assert r.status_code == 200 and r.json()["interface"] == interface and r.json()["path"] == "/hello"
        if interface == "asgi":
            # natively, the server ran lifespan; through ASGI->WSGI, the bridge did
            assert r.json()["startup"] is True
        assert httpx.post(srv.url + "/", content=b"x" * 70000, timeout=10).content == b"x" * 70000
        group = srv.process_group()
        assert srv.pid in group
    assert srv.stop() is not None  # idempotent
    assert process_group_members(srv.pid) == [], f"{spec.name} left processes behind"


def test_workers_are_stopped_with_the_master() -> None:
    with start_server(
        "gunicorn-gthread", "bare_wsgi", ServerOptions(app_target=APPS["wsgi"][1], workers=2, threads=2)
    ) as srv:
        assert "-w 2 --threads 2" in srv.native_command
        deadline_members = srv.process_group()
        # the arbiter forks its workers after binding; wait for them (bounded)
        for _ in range(100):
            if len(deadline_members) >= 3:
                break
            httpx.get(srv.url + "/", timeout=5)
            deadline_members = srv.process_group()
        assert len(deadline_members) >= 3, deadline_members
    assert process_group_members(srv.pid) == []


def test_uvicorn_maps_parser_and_loop() -> None:
    with start_server(
        "uvicorn", "bare_asgi", ServerOptions(app_target=APPS["asgi"][1], http="h11", loop="asyncio")
    ) as srv:
        assert "--http h11 --loop asyncio" in srv.native_command
        assert httpx.get(srv.url + "/", timeout=10).status_code == 200


def test_threads_size_the_wsgi_to_asgi_bridge_pool() -> None:
    with start_server("uvicorn", "bare_wsgi", ServerOptions(app_target=APPS["wsgi"][1], threads=3)) as srv:
        assert "LAYERCAKE_BRIDGE_THREADS=3" in srv.native_command and "--threads" not in srv.native_command
        assert httpx.get(srv.url + "/", timeout=10).status_code == 200


# ----------------------------------------------------------------------------- bad input


def test_unknown_server_lists_the_choices() -> None:
    with pytest.raises(UnknownName) as info:
        start_server("apache", "bare_wsgi")
    assert info.value.exit_code == 2 and "uvicorn" in info.value.message and "gunicorn-sync" in info.value.message


@pytest.mark.parametrize(
    ("server", "opts", "says"),
    [
        ("uvicorn", ServerOptions(threads=4), "has no --threads"),
        ("gunicorn-sync", ServerOptions(threads=4), "use gunicorn-gthread"),
        ("wsgiref", ServerOptions(workers=2), "has no --workers"),
        ("hypercorn", ServerOptions(http="httptools"), "has no --http"),
        ("uvicorn", ServerOptions(http="nghttp2"), "takes --http h11 | httptools"),
        ("uvicorn", ServerOptions(loop="trio"), "takes --loop asyncio | uvloop"),
        ("uvicorn", ServerOptions(workers=0), "at least 1"),
    ],
    ids=[
        "threads-uvicorn",
        "threads-sync",
        "workers-wsgiref",
        "http-hypercorn",
        "http-value",
        "loop-value",
        "zero-workers",
    ],
)
def test_unsupported_flag_is_a_usage_error(server: str, opts: ServerOptions, says: str) -> None:
    layer = "bare_asgi" if get_server(server).interface == "asgi" else "bare_wsgi"
    with pytest.raises(LayercakeError) as info:
        start_server(server, layer, opts)
    assert info.value.exit_code == 2 and says in info.value.message


def test_port_in_use_is_refused_before_starting() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LayercakeError) as info:
            start_server("uvicorn", "bare_asgi", ServerOptions(port=port, app_target=APPS["asgi"][1]))
    assert info.value.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in info.value.message


def test_missing_package_names_the_extra() -> None:
    ghost = dataclasses.replace(get_server("hypercorn"), requires=(Requirement("no_such_module_xyz", "ghostcorn"),))
    assert not ghost.available
    with pytest.raises(MissingPackage) as info:
        start_server(ghost, "bare_asgi")
    assert "'ghostcorn'" in info.value.message and "pip install -e '.[servers]'" in info.value.message


def test_a_server_that_exits_reports_its_output() -> None:
    with pytest.raises(ServerStartError) as info:
        start_server("uvicorn", "bare_asgi", ServerOptions(app_target="tests.servers.no_such_module:app"))
    assert "exited with status" in info.value.message and "no_such_module" in info.value.message


# ------------------------------------------------------------------- parser and loop choices

CHOICES = [
    (spec.name, flag, value)
    for spec in SERVERS.values()
    for flag, values in (("http", spec.capabilities.http_parsers), ("loop", spec.capabilities.loops))
    for value in values
]


@pytest.mark.parametrize(("server", "flag", "value"), CHOICES, ids=[f"{s}-{f}-{v}" for s, f, v in CHOICES])
def test_every_parser_and_loop_choice_starts(server: str, flag: str, value: str) -> None:
    spec = get_server(server)
    _skip_unless_runnable(spec)
    layer, target = APPS[spec.interface]
    opts = dataclasses.replace(ServerOptions(app_target=target), **{flag: value})
    try:
        srv = start_server(spec, layer, opts)
    except MissingPackage as exc:
        pytest.skip(exc.message)
    spelled = {
        ("gunicorn-uvicorn", "http", "h11"): "-k uvicorn_worker.UvicornH11Worker",
        ("gunicorn-uvicorn", "http", "httptools"): "-k uvicorn_worker.UvicornWorker",  # auto: httptools
        ("hypercorn", "loop", value): f"-k {value}",
        ("gunicorn-asgi", "http", value): f"--http-parser {value}",
        ("gunicorn-asgi", "loop", value): f"--asgi-loop {value}",
    }
    with srv:
        assert spelled.get((server, flag, value), f"--{flag} {value}") in srv.native_command
        assert httpx.get(srv.url + "/", timeout=10).json()["interface"] == spec.interface


def test_a_choice_needing_a_missing_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from servers import registry

    monkeypatch.setitem(registry.OPTION_REQUIRES, ("loop", "uvloop"), Requirement("no_such_loop_xyz", "ghostloop"))
    with pytest.raises(MissingPackage) as info:
        start_server("uvicorn", "bare_asgi", ServerOptions(loop="uvloop"))
    assert "uvicorn --loop uvloop" in info.value.message and "'ghostloop'" in info.value.message
    assert "pip install -e '.[servers]'" in info.value.message


def test_a_choice_no_extra_brings_names_the_package_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # gunicorn-h1c is kept out of the servers extra on purpose: the hint used to say to
    # install the extra, which would not have brought it.
    from servers import registry

    monkeypatch.setitem(
        registry.OPTION_REQUIRES,
        ("http", "fast"),
        dataclasses.replace(registry.OPTION_REQUIRES[("http", "fast")], module="no_such_h1c_xyz"),
    )
    with pytest.raises(MissingPackage) as info:
        start_server("gunicorn-asgi", "bare_asgi", ServerOptions(http="fast"))
    assert info.value.message.endswith("install it with: pip install gunicorn-h1c")


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-gthread"])
def test_ipv6_loopback(server: str) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 is not configured here")
    spec = get_server(server)
    layer, target = APPS[spec.interface]
    with start_server(spec, layer, ServerOptions(host="::1", app_target=target)) as srv:
        assert srv.url.startswith("http://[::1]:")
        assert httpx.get(srv.url + "/", timeout=10).status_code == 200


@pytest.mark.parametrize(("lifespan", "startup"), [("on", True), ("off", False)])
def test_env_reaches_the_server_and_can_turn_off_the_bridge_lifespan(lifespan: str, startup: bool) -> None:
    opts = ServerOptions(app_target=APPS["asgi"][1], env={"LAYERCAKE_BRIDGE_LIFESPAN": lifespan})
    with start_server("gunicorn-gthread", "bare_asgi", opts) as srv:
        assert srv.bridge == "asgi->wsgi"
        assert httpx.get(srv.url + "/", timeout=10).json()["startup"] is startup
