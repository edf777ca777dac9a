"""Decorators that instrument a function: timer, inprogress, count_exceptions.

Each works on plain and on coroutine functions; for a coroutine function the
wrapper is itself a coroutine function, so the metric sees the time until the
awaited result, not until the coroutine object was created.
"""

import asyncio
import functools
import time
from typing import Any, Callable, Dict, Optional, TypeVar, Union

from .collectors import Counter, Gauge, Histogram, Summary

F = TypeVar("F", bound=Callable[..., Any])
Labels = Optional[Dict[str, Any]]


def _wrap(func: F, before: Callable[[], Any], after: Callable[[Any, bool], None]) -> F:
    """Wrap `func`: `before()` runs first, `after(token, raised)` always runs last."""
    if asyncio.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            token = before()
            raised = True
            try:
                result = await func(*args, **kwargs)
                raised = False
                return result
            finally:
                after(token, raised)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = before()
        raised = True
        try:
            result = func(*args, **kwargs)
            raised = False
            return result
        finally:
            after(token, raised)

    return wrapper  # type: ignore[return-value]


def timer(metric: Union[Histogram, Summary], labels: Labels = None) -> Callable[[F], F]:
    """Observe how long each call takes (seconds) into a Histogram or Summary."""
    if not isinstance(metric, (Histogram, Summary)):
        raise TypeError(
            f"timer decorator expects a Histogram or Summary metric but got: {metric}"
        )

    def decorate(func: F) -> F:
        def after(start: float, raised: bool) -> None:
            metric.observe(labels, time.perf_counter() - start)

        return _wrap(func, time.perf_counter, after)

    return decorate


def inprogress(metric: Gauge, labels: Labels = None) -> Callable[[F], F]:
    """Keep a Gauge at the number of calls currently running."""
    if not isinstance(metric, Gauge):
        # 23.12's exact words, misspelling included: tests match on them
        raise TypeError(f"inprogess decorator expects a Gauge metric but got: {metric}")

    def decorate(func: F) -> F:
        return _wrap(
            func, lambda: metric.inc(labels), lambda _token, _raised: metric.dec(labels)
        )

    return decorate


def count_exceptions(metric: Counter, labels: Labels = None) -> Callable[[F], F]:
    """Count the calls that raise in a Counter (the exception still propagates)."""
    if not isinstance(metric, Counter):
        raise TypeError(
            f"count_exceptions decorator expects a Counter metric but got: {metric}"
        )

    def decorate(func: F) -> F:
        def after(_token: None, raised: bool) -> None:
            if raised:
                metric.inc(labels)

        return _wrap(func, lambda: None, after)

    return decorate
