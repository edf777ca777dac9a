"""Bucket helpers (aioprometheus.histogram import path).

``linearBuckets`` and ``exponentialBuckets`` build bucket bounds for
``Histogram(buckets=...)``; ``Histogram`` here is the stand-alone bucket
counter aioprometheus shipped, kept for code that imports it.
"""

import bisect
from typing import Dict, List, Union

POS_INF = float("inf")
NEG_INF = float("-inf")

BucketType = float


def linearBuckets(
    start: Union[float, int], width: Union[float, int], count: int
) -> List[float]:
    """`count` bounds, `width` apart, the lowest at `start` (no +Inf)."""
    if count < 1:
        raise ValueError("Invalid count, must be a positive number")
    return [start + i * width for i in range(count)]


def exponentialBuckets(
    start: Union[float, int], factor: Union[float, int], count: int
) -> List[float]:
    """`count` bounds, each `factor` times the previous, from `start` (no +Inf)."""
    if count < 1:
        raise ValueError("Invalid count, must be a positive number")
    if start <= 0:
        raise ValueError("Invalid start, must be positive")
    if factor <= 1:
        raise ValueError("Invalid factor, must be greater than one")
    return [start * (factor**i) for i in range(count)]


class Histogram:
    """An unlabelled bucket counter: ``buckets``, ``observations`` and ``sum``."""

    def __init__(self, *buckets: BucketType) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if bounds and bounds[-1] != POS_INF:
            bounds.append(POS_INF)
        if len(bounds) < 2:
            raise ValueError("Must have at least two buckets")
        self._bounds = bounds
        self._counts = [0] * len(bounds)
        self.observations = 0
        self.sum = 0.0

    def observe(self, value: Union[float, int]) -> None:
        """Count `value` into its bucket and add it to the sum."""
        index = bisect.bisect_left(self._bounds, value)
        self._counts[min(index, len(self._counts) - 1)] += 1
        self.sum += value
        self.observations += 1

    @property
    def buckets(self) -> Dict[float, int]:
        """``{upper bound: cumulative count}`` in bound order."""
        result, running = {}, 0
        for bound, count in zip(self._bounds, self._counts):
            running += count
            result[bound] = running
        return result
