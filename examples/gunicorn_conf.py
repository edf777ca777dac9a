"""
gunicorn settings for multiprocess_app.py: the one hook multi-process mode
asks of a gunicorn deployment. When gunicorn reaps a worker, its store is
folded into the directory's archive at once (its counts are kept, its live
gauges dropped), instead of at the next scrape.
"""

from aioprometheus.multiprocess import mark_process_dead


def child_exit(server, worker):
    mark_process_dead(worker.pid)
