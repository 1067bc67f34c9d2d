"""Errors of the local stack runner.

    LocalStackError          the stack cannot start (a missing build, a bad parameter...)
    InvocationError          an invocation failed (function error, timeout, crash)
    ├── FunctionNotFound     no such function in the template
    └── PayloadTooLarge      over Lambda's payload limit
"""

from __future__ import annotations

__all__ = ["FunctionNotFound", "InvocationError", "LocalStackError", "PayloadTooLarge"]


class LocalStackError(Exception):
    """The local stack cannot start; the message says what to do."""


class InvocationError(Exception):
    """An invocation did not produce a result."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class FunctionNotFound(InvocationError):
    def __init__(self, name: str) -> None:
        super().__init__("ResourceNotFoundException", f"Function not found: {name}")


class PayloadTooLarge(InvocationError):
    def __init__(self, limit: int) -> None:
        super().__init__("RequestEntityTooLargeException",
                         f"Request must be smaller than {limit} bytes for the operation")
