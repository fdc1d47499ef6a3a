"""Who is calling: the three kinds of credential of CONTRACT.md section 2."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StaffPrincipal:
    id: str
    name: str
    role: str
    email: str


@dataclass(frozen=True)
class IntegrationPrincipal:
    id: str
    name: str


@dataclass(frozen=True)
class CustomerPrincipal:
    conversation_id: str


Principal = StaffPrincipal | IntegrationPrincipal | CustomerPrincipal
