"""
A FastAPI application for a pre-fork server (gunicorn, ``uvicorn --workers``)
in multi-process mode: every worker counts into its own store in
$PROMETHEUS_MULTIPROC_DIR, and /metrics, whichever worker answers it, serves
the sum of all of them.

    rm -rf /tmp/metrics && mkdir /tmp/metrics
    export PROMETHEUS_MULTIPROC_DIR=/tmp/metrics
    gunicorn -c examples/gunicorn_conf.py -k uvicorn.workers.UvicornWorker \
        -w 4 -b 127.0.0.1:8000 --chdir examples multiprocess_app:app
    # or, without the hook (a dead worker's store is folded at the next scrape):
    uvicorn --workers 4 --port 8000 --app-dir examples multiprocess_app:app
"""

import os

from fastapi import FastAPI

from aioprometheus import Counter, Gauge, Histogram, MetricsMiddleware
from aioprometheus.asgi.starlette import metrics

app = FastAPI()
app.add_middleware(MetricsMiddleware)
app.add_route("/metrics", metrics)

# counters and histograms add up over the workers
jobs = Counter("app_jobs_total", "Jobs accepted.")
sizes = Histogram("app_job_size_bytes", "Job sizes.", buckets=[100, 1000, 10000])
# a gauge says how its workers' values combine: here, the live workers' sum
workers = Gauge("app_workers", "Live worker processes.", multiprocess_mode="livesum")
workers.set({}, 1)


@app.post("/jobs/{size}")
async def accept(size: int):
    jobs.inc({"queue": "default"})
    sizes.observe({"queue": "default"}, size)
    return {"worker": os.getpid()}
