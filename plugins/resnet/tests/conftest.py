"""Fixtures of the ResNet plugin's tests (a minimal copy of the ones in ganforge's tests/)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No plugin switches from the developer's shell, and a cache directory of their own."""
    monkeypatch.delenv("GANFORGE_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("GANFORGE_DISABLE_PLUGINS", raising=False)
    monkeypatch.setenv("GANFORGE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
