"""The application's error: bad user input or an environment it cannot work in."""

from __future__ import annotations

__all__ = ["AppError", "app_message"]


class AppError(Exception):
    """A problem the user can fix; the CLI prints it as ``batchmix: error: ...`` and exits 2."""


def app_message(error: AppError) -> str:
    """The error's message; for one raised in a DataLoader worker, which the DataLoader raises
    again as ``AppError("Caught AppError in ...\nOriginal Traceback ...")``, the original one."""
    text = str(error)
    if text.startswith("Caught AppError in ") and "\nOriginal Traceback" in text:
        original = text.rpartition(f"{AppError.__module__}.AppError: ")[2].strip()
        return original or text
    return text
