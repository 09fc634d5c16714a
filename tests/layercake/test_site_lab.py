"""The site's pages for the sync-vs-async lab: one page per experiment report, linked from the benchmarks page."""

from __future__ import annotations

import re
from pathlib import Path

from layercake.site.build import BuildReport, Site, write_bench


def test_each_experiment_report_gets_its_own_page_with_its_chart(tmp_path: Path) -> None:
    bench = tmp_path / "bench-results"
    bench.mkdir()
    (bench / "ladder.md").write_text("# Ladder\n\n![ladder](ladder.png)\n")
    (bench / "ladder.png").write_bytes(b"\x89PNG fake")
    (bench / "experiment-blocking.md").write_text(
        "# Experiment: one blocking call in `async def`\n\n![chart](blocking.png)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    (bench / "blocking.png").write_bytes(b"\x89PNG fake")
    (bench / "experiment-cpu.md").write_text("# Experiment: CPU-bound work\n\n![chart](cpu.png)\n")
    (bench / "cpu.png").write_bytes(b"\x89PNG fake")
    out = tmp_path / "out"
    write_bench(Site(out, BuildReport(out), "now", "abc1234"), bench)

    index = (out / "bench" / "index.html").read_text(encoding="utf-8")
    assert 'href="experiment-blocking.html"' in index and 'href="experiment-cpu.html"' in index
    assert "one blocking call in async def" in index
    # The lab's charts are on their own pages, not repeated in the index's leftover "Charts".
    assert 'src="blocking.png"' not in index and 'src="ladder.png"' in index
    page = (out / "bench" / "experiment-blocking.html").read_text(encoding="utf-8")
    assert 'src="blocking.png"' in page and "<table>" in page
    assert (out / "bench" / "blocking.png").exists()
    for src in re.findall(r'src="([^"]+)"', page):
        assert (out / "bench" / src).exists() or src.startswith(("http", "/", "..")), src


def test_the_peers_run_gets_a_page_with_its_charts(tmp_path: Path) -> None:
    bench = tmp_path / "bench-results"
    (bench / "peers").mkdir(parents=True)
    (bench / "peers" / "peers.md").write_text(
        "# layercake bench: ladder\n\n| target | req/s |\n|---|---|\n| go | 9 |\n"
    )
    (bench / "peers" / "ladder-rps.png").write_bytes(b"\x89PNG fake")
    out = tmp_path / "out"
    write_bench(Site(out, BuildReport(out), "now", "abc1234"), bench)
    index = (out / "bench" / "index.html").read_text(encoding="utf-8")
    assert 'href="peers.html"' in index and 'src="peers/ladder-rps.png"' not in index
    page = (out / "bench" / "peers.html").read_text(encoding="utf-8")
    assert 'src="peers/ladder-rps.png"' in page and (out / "bench" / "peers" / "ladder-rps.png").exists()


def test_a_report_in_a_subfolder_gets_a_page_whose_chart_resolves(tmp_path: Path) -> None:
    bench = tmp_path / "bench-results"
    (bench / "threadpool-1s").mkdir(parents=True)
    (bench / "threadpool-1s" / "experiment-threadpool-1s.md").write_text(
        "# Experiment: a slower wait\n\n![c](threadpool.png)\n"
    )
    (bench / "threadpool-1s" / "threadpool.png").write_bytes(b"\x89PNG fake")
    out = tmp_path / "out"
    write_bench(Site(out, BuildReport(out), "now", "abc1234"), bench)
    index = (out / "bench" / "index.html").read_text(encoding="utf-8")
    assert 'href="experiment-threadpool-1s.html"' in index and "threadpool.png" not in index
    page = (out / "bench" / "experiment-threadpool-1s.html").read_text(encoding="utf-8")
    # Inside the project relink maps docs/bench/threadpool-1s/threadpool.png to its copy (checked on the real
    # site build); here, outside it, the link is kept and the copy is where the report's folder says.
    assert "threadpool.png" in page and (out / "bench" / "threadpool-1s" / "threadpool.png").exists()
