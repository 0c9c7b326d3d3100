"""Fixtures shared by every test level: nothing here touches the network."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they set themselves, never the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith("S3VL_") or name.startswith("AWS_"):
            monkeypatch.delenv(name, raising=False)
