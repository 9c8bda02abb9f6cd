"""The application's error: bad user input or an environment it cannot work in."""

from __future__ import annotations

__all__ = ["AppError"]


class AppError(Exception):
    """A problem the user can fix; the CLI prints it as ``batchmix: error: ...`` and exits 2."""
