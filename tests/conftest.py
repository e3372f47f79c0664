"""Markers by folder: every test under ``tests/integration/`` is an ``integration`` test.

``pytest -m "not integration"`` then deselects those tests before any fixture runs, so the
unit suite never starts the session broker (``tests/integration/conftest.py``), which is
set up only when a selected test asks for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)
