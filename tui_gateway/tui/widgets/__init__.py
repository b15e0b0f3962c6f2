"""The panes of the main screen; other code imports them from here."""

from __future__ import annotations

from .cooldowns import CooldownsPane
from .pools import PoolsPane
from .posteriors import PosteriorsPane
from .requests import RequestsPane
from .sessions import ConfirmScreen, SessionsPane
from .status import StatusBar

__all__ = [
    "ConfirmScreen",
    "CooldownsPane",
    "PoolsPane",
    "PosteriorsPane",
    "RequestsPane",
    "SessionsPane",
    "StatusBar",
]
