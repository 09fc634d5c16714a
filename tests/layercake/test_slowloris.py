"""Many slow clients at once (layercake/slowloris.py), bounded: 200 clients trickling request heads against each
scratch server with a short header timeout; the bystander is served and every slow client is cut."""

from __future__ import annotations

import pytest

from layercake.slowloris import SlowlorisReport, raise_fd_limit, slowloris_url
from servers.supervise import process_group_members
from tests.servers.scratch_live import address, server_process, wait_for

SERVERS = {"scratch-wsgi": ("servers.scratch_wsgi", "bare_wsgi"), "scratch-asgi": ("servers.scratch_asgi", "bare_asgi")}


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_two_hundred_slow_clients_are_cut_and_the_bystander_is_served(name: str) -> None:
    module, layer = SERVERS[name]
    raise_fd_limit(1024)
    with server_process(module, f"layers.{layer}.app:app", "--header-timeout", "2", "--no-access-log") as server:
        assert server.url, server.stderr
        host, port = address(server.url)
        pids = process_group_members(server.proc.pid)
        report = SlowlorisReport(name, layer, "", clients=200, duration=5.0)
        slowloris_url(host, port, pids, report, baseline=1.0)
        assert report.unloaded and report.loaded, "the bystander was never served"
        assert report.bystander_failures == 0
        assert report.connected == 200
        assert len(report.cut) == 200, f"{report.never_cut} slow clients were never cut"
        assert set(report.statuses) <= {"408", "closed"}, report.statuses
        assert wait_for(lambda: server.proc.poll() is None)
