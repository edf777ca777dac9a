"""examples/starlette_example.py and examples/quart_example.py, which the
Getting started guide includes, do what it says: each is run in a process of
its own (they use the default registry), driven through its ASGI app."""

import textwrap
from pathlib import Path

import pytest
from isolated import run_isolated
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]

DRIVER = textwrap.dedent(
    """
    import asyncio, sys
    import httpx
    sys.path.insert(0, {examples!r})
    from {module} import app

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
            for path in {paths!r}:
                await c.get(path)
            response = await c.get("/metrics")
            assert response.status_code == 200, response.status_code
            sys.stdout.write(response.text)

    asyncio.run(main())
    """
)


def _scrape(module, paths):
    code = DRIVER.format(examples=str(REPO / "examples"), module=module, paths=paths)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(run_isolated(code, timeout=60))
        for s in f.samples
    }


def test_starlette_example_counts_by_template():
    pytest.importorskip("starlette")
    samples = _scrape("starlette_example", ["/items/2", "/items/3", "/items/4"])
    assert samples[("item_lookups_total", (("outcome", "found"),))] == 2
    assert samples[("item_lookups_total", (("outcome", "missing"),))] == 1
    by_path = {
        dict(labels)["path"]: value
        for (name, labels), value in samples.items()
        # prometheus_client's parser adds _total to a counter's samples
        if name == "requests_total_counter_total"
    }
    assert by_path["/items/{item_id:int}"] == 3


def test_quart_example_counts_and_serves():
    pytest.importorskip("quart")
    samples = _scrape("quart_example", ["/hello/a", "/hello/b"])
    assert samples[("greetings_total", (("language", "en"),))] == 2
    # Quart has no route templates for the middleware: the path as requested
    requests = (
        "requests_total_counter_total",
        (("method", "GET"), ("path", "/hello/a")),
    )
    assert samples[requests] == 1
