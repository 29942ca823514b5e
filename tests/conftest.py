"""Fixtures several kinds of tests share."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A temp dir other users may traverse (pytest's own temp dirs are 0700, root's)."""
    path = Path(tempfile.mkdtemp(prefix="rhid-public-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
