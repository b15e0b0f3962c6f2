"""Screens pushed over the main one."""

from __future__ import annotations

from .detail import RequestDetailScreen

__all__ = ["RequestDetailScreen"]
