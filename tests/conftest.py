import pytest

from aioprometheus import Registry


@pytest.fixture
def registry() -> Registry:
    """A fresh registry, so tests never see each other's metrics."""
    return Registry()
