"""
A Quart application: the middleware wraps Quart's ASGI app, and the metrics
route is aioprometheus' Quart handler (needs quart).

    QUART_APP=examples.quart_example:app quart run --port 8000
    curl -s http://127.0.0.1:8000/hello/world
    curl -s http://127.0.0.1:8000/metrics
"""

from quart import Quart

from aioprometheus import Counter, MetricsMiddleware
from aioprometheus.asgi.quart import metrics

app = Quart(__name__)
app.asgi_app = MetricsMiddleware(app.asgi_app)
app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])

greetings = Counter("greetings_total", "Greetings sent.")


@app.route("/hello/<name>")
async def hello(name: str) -> str:
    greetings.inc({"language": "en"})
    return f"Hello, {name}!"
