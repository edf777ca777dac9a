"""
A client for the Prometheus Pushgateway, for jobs that cannot be scraped
(batch jobs, short-lived processes).

.. code-block:: python

    p = Pusher("my-batch-job", "http://127.0.0.1:9091",
               grouping_key={"instance": "host-1"})
    await p.replace(REGISTRY)   # PUT: replace the whole group
    await p.add(REGISTRY)       # POST: replace only the metrics pushed
    await p.delete(REGISTRY)    # DELETE: remove the group
"""

import asyncio
import base64
import re
import warnings
from typing import Any, Dict, Mapping, Optional, Type, Union

import aiohttp

from .collectors import REGISTRY, Registry
from .formats.base import IFormatter
from .formats.text import TextFormatter

#: Default total time (seconds) allowed for one push, connection included.
DEFAULT_TIMEOUT = 30.0

TEXT = "text"
PROTOBUF = "protobuf"

_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Values made only of these characters go into the URL as they are; anything
# else (notably '/', '%', '+', spaces, control characters such as '\n',
# non-ASCII, empty, '.' and '..') is sent in the Pushgateway's base64url form,
# which no proxy or client can mangle. Always matched with ``fullmatch``: a
# '$' anchor would accept a trailing newline, and "host\n" would then be
# sent as the group "host".
_PLAIN_VALUE_RE = re.compile(r"[A-Za-z0-9_.~:-]+")


class PushError(Exception):
    """A push to the gateway failed: it answered with a non-2xx status (then
    ``status`` and ``body`` are set), or the request itself failed.

    When the request failed (no connection, no answer in time, ...), the
    error raised is also an instance of the exception that aiohttp or asyncio
    raised, which aioprometheus 23.12 let through: ``except
    aiohttp.ClientError``, ``except aiohttp.ClientConnectorError`` or ``except
    asyncio.TimeoutError`` written for 23.12 still catch it. That original
    exception is its ``__cause__``, and its attributes (``host``, ``port``,
    ``os_error``, ``errno``...) read the same on the PushError.
    """

    def __init__(
        self, message: str, *, status: Optional[int] = None, body: str = ""
    ) -> None:
        # Not super().__init__: in a transport subclass the next class in the
        # MRO is the cause's, whose __init__ takes other arguments.
        Exception.__init__(self, message)
        self.message = message
        self.status = status
        self.body = body

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        # A transport subclass is made at run time and cannot be imported by
        # pickle; a copy or unpickled error is a plain PushError.
        return (PushError, (self.message,), {"status": self.status, "body": self.body})


# PushError subclasses by the class of the transport exception they stand for.
_TRANSPORT_ERROR_CLASSES: Dict[type, Type[PushError]] = {}


def _transport_error(message: str, cause: BaseException) -> PushError:
    """A PushError that is also an instance of ``type(cause)`` (a subclass of
    both, made once per cause class), carrying the cause's attributes."""
    cause_class = type(cause)
    error_class = _TRANSPORT_ERROR_CLASSES.get(cause_class)
    if error_class is None:
        error_class = _TRANSPORT_ERROR_CLASSES[cause_class] = type(
            "Push" + cause_class.__name__,
            (PushError, cause_class),
            {"__module__": __name__, "__doc__": PushError.__doc__},
        )
    error = error_class.__new__(error_class)
    error.__dict__.update(vars(cause))
    if isinstance(cause, OSError):
        # errno and friends are C slots of OSError, not in the instance dict.
        os_error: Any = error
        os_error.errno = cause.errno
        os_error.strerror = cause.strerror
        os_error.filename = cause.filename
        os_error.filename2 = cause.filename2
    PushError.__init__(error, message)
    return error


def encode_grouping_key(job: str, grouping_key: Mapping[str, Any]) -> str:
    """Return the Pushgateway URL path suffix for a job and grouping key,
    e.g. ``/job/batch/instance/host-1``; values that cannot travel as a plain
    path segment use the ``name@base64/value`` form."""
    parts = [_encode_pair("job", job)]
    for name in sorted(grouping_key):
        parts.append(_encode_pair(name, str(grouping_key[name])))
    return "".join(parts)


def _encode_pair(name: str, value: str) -> str:
    if _PLAIN_VALUE_RE.fullmatch(value) and value not in (".", ".."):
        return f"/{name}/{value}"
    if value == "":
        # An empty value needs at least one padding character so that the
        # path contains neither '//' nor a trailing '/'.
        return f"/{name}@base64/="
    encoded = base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")
    return f"/{name}@base64/{encoded}"


class Pusher:
    """Push the metrics of a registry to a Prometheus Pushgateway.

    :param job_name: the job label of the pushed group (must not be empty).
    :param addr: the gateway's base URL, e.g. ``http://127.0.0.1:9091``. A path
      in it (a gateway behind a route prefix) is kept.
    :param grouping_key: extra labels identifying the group, e.g.
      ``{"instance": "host-1"}``. Values are converted with ``str``.
    :param path: ``/metrics`` (the default) pushes to
      ``/metrics/job/<job>/<grouping key>``; any other path (for example
      VictoriaMetrics' ``/api/v1/import/prometheus``) is used as it is,
      without job or grouping key.
    :param body_format: ``"text"`` (the default) or ``"protobuf"``
      (delimited protobuf, needs the binary formatter).
    :param client_kwargs: extra :class:`aiohttp.ClientSession` arguments
      (``auth``, ``headers``, ...), used for every push.

    :raises: ValueError for an empty job name, a bad grouping-key label name or
      an unknown ``body_format``.
    """

    PROMETHEUS_PATH = "/metrics"

    def __init__(
        self,
        job_name: str,
        addr: str,
        grouping_key: Optional[Mapping[str, Any]] = None,
        path: str = PROMETHEUS_PATH,
        *,
        body_format: str = TEXT,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        **client_kwargs: Any,
    ) -> None:
        if loop is not None:
            warnings.warn(
                "The 'loop' argument of Pusher is deprecated and ignored",
                DeprecationWarning,
                stacklevel=2,
            )
        if not isinstance(job_name, str) or not job_name:
            raise ValueError(f"job_name must be a non-empty string, got: {job_name!r}")
        if not isinstance(addr, str) or not addr:
            raise ValueError(f"addr must be a URL string, got: {addr!r}")
        grouping: Dict[str, str] = {}
        for name, value in (grouping_key or {}).items():
            # The Pushgateway refuses names reserved for Prometheus ('__').
            if (
                not isinstance(name, str)
                or not _LABEL_NAME_RE.fullmatch(name)
                or name.startswith("__")
            ):
                raise ValueError(f"invalid grouping key label name: {name!r}")
            if name == "job":
                raise ValueError(
                    "the grouping key may not contain 'job'; it is given by job_name"
                )
            grouping[name] = str(value)
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got: {path!r}")

        self.job_name = job_name
        self.addr = addr
        self.grouping_key = grouping
        self.body_format = body_format
        self.formatter = _make_formatter(body_format)
        self.headers: Dict[str, str] = dict(self.formatter.get_headers())
        self.client_kwargs = client_kwargs

        if path == self.PROMETHEUS_PATH:
            path = path + encode_grouping_key(job_name, grouping)
        self.path = addr.rstrip("/") + path

    @property
    def url(self) -> str:
        """The URL pushed to."""
        return self.path

    async def add(
        self,
        registry: Registry = REGISTRY,
        timeout: Union[float, aiohttp.ClientTimeout, None] = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> aiohttp.ClientResponse:
        """POST: replace the pushed metrics that have the same names as the
        ones in ``registry``, keep the rest of the group.

        :param registry: the registry to push.
        :param timeout: seconds (or an ``aiohttp.ClientTimeout``) allowed for
          the whole request; None for aiohttp's default.
        :param kwargs: extra ``aiohttp.ClientSession`` arguments for this push.

        :returns: the gateway's (2xx) response, body already read.
        :raises: PushError if the gateway is unreachable, too slow or answers
          with an error status.
        """
        return await self._push("POST", registry, timeout, kwargs)

    async def replace(
        self,
        registry: Registry = REGISTRY,
        timeout: Union[float, aiohttp.ClientTimeout, None] = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> aiohttp.ClientResponse:
        """PUT: replace all the metrics of the group with those in
        ``registry``. Arguments and errors as for :meth:`add`."""
        return await self._push("PUT", registry, timeout, kwargs)

    async def delete(
        self,
        registry: Registry = REGISTRY,
        timeout: Union[float, aiohttp.ClientTimeout, None] = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> aiohttp.ClientResponse:
        """DELETE: remove the whole group from the gateway. The registry is
        sent as the body, as aioprometheus 23.12 sent it (the Pushgateway
        ignores it). Arguments and errors as for :meth:`add`."""
        return await self._push("DELETE", registry, timeout, kwargs)

    async def _push(
        self,
        method: str,
        registry: Registry,
        timeout: Union[float, aiohttp.ClientTimeout, None],
        kwargs: Dict[str, Any],
    ) -> aiohttp.ClientResponse:
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a Registry, got: {registry!r}")
        if timeout is None or isinstance(timeout, aiohttp.ClientTimeout):
            client_timeout = timeout
        elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            if not timeout > 0:
                raise ValueError(f"timeout must be positive, got: {timeout!r}")
            client_timeout = aiohttp.ClientTimeout(total=float(timeout))
        else:
            raise TypeError(f"timeout must be a number of seconds, got: {timeout!r}")

        session_kwargs = {**self.client_kwargs, **kwargs}
        if client_timeout is not None:
            # A timeout given through the ClientSession arguments wins over
            # the default (but not over an explicitly different one).
            if "timeout" not in session_kwargs or timeout != DEFAULT_TIMEOUT:
                session_kwargs["timeout"] = client_timeout

        data = self.formatter.marshall(registry)
        try:
            async with aiohttp.ClientSession(**session_kwargs) as session:
                async with session.request(
                    method, self.path, data=data, headers=self.headers
                ) as resp:
                    body = await resp.read()
        except asyncio.TimeoutError as exc:
            raise _transport_error(
                f"{method} {self.path} timed out after "
                f"{_describe(session_kwargs.get('timeout'))}",
                exc,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _transport_error(f"{method} {self.path} failed: {exc}", exc) from exc

        if not 200 <= resp.status < 300:
            text = body.decode("utf-8", "replace").strip()
            raise PushError(
                f"{method} {self.path} failed: HTTP {resp.status} {resp.reason}"
                + (f": {text[:500]}" if text else ""),
                status=resp.status,
                body=text,
            )
        return resp


def _describe(timeout: Any) -> str:
    total = getattr(timeout, "total", None)
    if total is None:
        return "the client timeout"
    return f"{total:g}s"


def _make_formatter(body_format: str) -> IFormatter:
    if body_format == TEXT:
        return TextFormatter()
    if body_format in (PROTOBUF, "binary"):
        try:
            from .formats.binary import BinaryFormatter
        except ImportError as exc:
            raise ValueError(
                "body_format 'protobuf' needs the binary formatter, which could "
                f"not be imported: {exc}"
            ) from exc
        return BinaryFormatter()
    raise ValueError(
        f"body_format must be {TEXT!r} or {PROTOBUF!r}, got: {body_format!r}"
    )
