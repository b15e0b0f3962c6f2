"""`[[clients]]`: named client keys, and what listening beyond this machine asks of the config.

A team shares one gateway: each assistant gets a key of its own, and the name that goes with it
is what the screen and the request log show. `server.api_key` (or the generated key) keeps
working beside them, with no name. Only a key the config sets opens the gateway to the network:
the generated one is for a gateway on loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

from .config_convert import ConfigError


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """One `[[clients]]` entry: a key and whose it is."""

    name: Annotated[
        str, Meta(pattern=r"^\S+$", extra={"expected": "a non-empty name without spaces"})
    ]
    """Shown on the screen and kept in the request log with each request sent with `key`."""
    key: Annotated[str, Meta(pattern=r"\S", extra={"expected": "a non-empty key"})]
    """What its assistant sends as `Authorization: Bearer KEY` (or `x-api-key`); `env:NAME`."""


def check_clients(clients: Sequence[ClientSettings], *, api_key: str | None, source: str) -> None:
    """Names and keys are unique, and `server.api_key` is nobody's: a key says whose it is."""
    names: set[str] = set()
    owners: dict[str, str] = {} if api_key is None else {api_key: "server.api_key"}
    for i, client in enumerate(clients):
        where = f"clients[{i}]"
        if client.name in names:
            raise ConfigError(source, f"{where}.name", f"a unique name ('{client.name}' repeats)")
        names.add(client.name)
        owner = owners.setdefault(client.key, f"{where}.key")
        if owner != f"{where}.key":  # the message says where the other one is, never the key
            raise ConfigError(source, f"{where}.key", f"a key of its own ({owner} is the same)")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`: addresses only this machine can reach."""
    name = host.strip().lower()
    if name in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # another host name (or "" for every interface): it may be reachable
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def exposure_refusal(host: str, *, own_key: bool, source: str) -> str | None:
    """Why the gateway must not listen on `host`, or None when it may: beyond loopback it takes a
    key the config sets, so opening the gateway to a network is a choice written down, not the
    side effect of a flag."""
    if own_key or is_loopback(host):
        return None
    where = f" in {source}" if source else ""
    return (
        f"host {host or '(every interface)'} can be reached from other machines, so it needs a"
        f" key you chose: set [server] api_key or add a [[clients]] entry (name, key){where};"
        " the generated key alone is enough only on loopback"
    )


def plain_http_warning(host: str) -> str | None:
    """A start-up warning for a gateway other machines can reach: its traffic is not encrypted."""
    if is_loopback(host):
        return None
    return (
        f"listening on {host or 'every interface'}, beyond this machine: keys, prompts and answers"
        " travel as plain HTTP; use it on a network you trust, or put a TLS proxy in front"
    )
