"""The built-in demo AI agent: rule-based, with confidence scores, speaking only Desk's public contract."""

from __future__ import annotations

from desk.demo_ai.app import build_demo_ai

__all__ = ["build_demo_ai"]
