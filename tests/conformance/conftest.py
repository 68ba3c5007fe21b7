"""Shared setup of the store conformance tests."""

from __future__ import annotations

import pytest

# detailed assertion messages for the public suite, which lives in the package
pytest.register_assert_rewrite("commlink.testing")
