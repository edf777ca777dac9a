"""
A FastAPI application counting its requests with MetricsMiddleware and
serving them at /metrics (needs fastapi and uvicorn).

    uvicorn examples.fastapi_example:app --port 8000
    curl -s http://127.0.0.1:8000/users/bob
    curl -s http://127.0.0.1:8000/metrics
"""

from fastapi import FastAPI

from aioprometheus import REGISTRY, Counter, MetricsMiddleware
from aioprometheus.asgi.starlette import metrics

app = FastAPI()
app.state.registry = REGISTRY  # the registry /metrics serves (the default)

# requests_total_counter, responses_total_counter, exceptions_total_counter and
# status_codes_counter, labelled with the route template ('/users/{user_id}').
app.add_middleware(MetricsMiddleware, group_status_codes=True)
app.add_route("/metrics", metrics)

users_seen = Counter("example_users_seen_total", "Users looked up.")


@app.get("/users/{user_id}")
async def get_user(user_id: str):
    users_seen.inc({"user": user_id})
    return {"user_id": user_id}
