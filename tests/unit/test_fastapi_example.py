"""examples/fastapi_example.py, as README shows it, does what it says: run in
a process of its own (it registers the runtime collectors in the default
registry) and driven through its ASGI app."""

import textwrap
from pathlib import Path

from isolated import run_isolated
from prometheus_client.openmetrics.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "fastapi_example.py"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

DRIVER = textwrap.dedent(
    f"""
    import asyncio, sys
    import httpx
    sys.path.insert(0, {str(REPO / "examples")!r})
    from fastapi_example import app

    async def main():
        transport = httpx.ASGITransport(app=app)
        base = "http://x"
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            for shop in ("books", "books", "games"):
                response = await client.post(
                    f"/orders/{{shop}}",
                    headers={{"traceparent": "00-{TRACE}-00f067aa0ba902b7-01"}},
                )
                assert response.json()["trace_id"] == "{TRACE}"
            response = await client.get(
                "/metrics", headers={{"Accept": "application/openmetrics-text"}}
            )
            sys.stdout.write(response.text)

    asyncio.run(main())
    """
)


def test_fastapi_example_counts_times_links_traces_and_collects_runtime():
    scraped = run_isolated(DRIVER, timeout=60)
    families = {f.name: f for f in text_string_to_metric_families(scraped)}
    orders = {s.labels["shop"]: s for s in families["shop_orders"].samples}
    assert orders["books"].value == 2 and orders["games"].value == 1
    assert orders["books"].exemplar.labels == {"trace_id": TRACE}
    durations = [
        s
        for s in families["http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert {(s.labels["path"], s.value) for s in durations} == {("/orders/{shop}", 3.0)}
    for runtime in ("process_cpu_seconds", "python_info", "python_asyncio_tasks"):
        assert runtime in families


def test_readme_shows_the_example_as_it_is():
    code = EXAMPLE.read_text().split('"""', 2)[2].strip()
    readme = (REPO / "README.rst").read_text()
    shown = "\n".join(
        line[4:] if line.startswith("    ") else line for line in readme.splitlines()
    )
    assert code in shown
