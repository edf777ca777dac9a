"""gunicorn configuration for test_multiprocess_servers.py: the child_exit
hook that multi-process mode asks for (README), as a user writes it.

    gunicorn -c mp_gunicorn_conf.py -k uvicorn.workers.UvicornWorker mp_app:app
"""

# The web framework is imported once here, in the master, so that the many
# workers the recycling test forks boot in milliseconds rather than re-import
# it; the application module (and so every metric) is still imported by each
# worker, as without --preload.
import fastapi  # noqa: F401
import fastapi.responses  # noqa: F401

from aioprometheus.multiprocess import mark_process_dead


def child_exit(server, worker):
    mark_process_dead(worker.pid)
