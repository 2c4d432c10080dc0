"""Who is asking and where: the caller's organization and (when resolved) namespace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An authenticated API key's organization."""

    org_id: str
    key_id: str


@dataclass(frozen=True)
class NamespaceScope:
    """A namespace the principal owns; every namespaced query filters on it."""

    org_id: str
    namespace_id: str
    namespace_name: str
