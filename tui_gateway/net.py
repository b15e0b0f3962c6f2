"""How a listening address is written in a URL (an IPv6 host goes in brackets)."""

from __future__ import annotations


def http_root(host: str, port: int) -> str:
    """`http://host:port`, the root every path of the gateway hangs from."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
