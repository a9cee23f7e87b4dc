"""The one error the pure analysis raises for an exam it cannot analyse."""

from __future__ import annotations


class AnalysisError(ValueError):
    """The exam cannot be analysed; the message says why (the study is marked failed)."""
