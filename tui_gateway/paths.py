"""Where things live by default, and the bearer key that is generated once."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import platformdirs

APP_NAME = "tui-gateway"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def default_config_path() -> Path:
    return config_dir() / "config.toml"


def default_db_path(*, demo: bool) -> Path:
    """The demo keeps its own database so simulated traffic never mixes with real statistics."""
    return data_dir() / ("demo.db" if demo else "gateway.db")


def generated_api_key() -> str:
    """The key kept in the data dir, made on first use and reused after, so clients keep working."""
    path = data_dir() / "api_key"
    try:
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "tgw-" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a secret: owner only
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    return key


def mask(key: str) -> str:
    """`tgw-abc…xyz`: enough to recognise a key, not enough to use it."""
    return key if len(key) <= 10 else f"{key[:6]}…{key[-4:]}"
