"""The `[cluster]` table: several gateways, one shared state through Redis (see cluster/)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated

from msgspec import Meta

__all__ = ["ClusterSettings", "cluster_warnings", "missing_client", "with_cluster_env"]


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    redis_url: (
        Annotated[
            str,
            Meta(
                pattern=r"^(rediss?|unix)://",
                extra={"expected": "a redis://, rediss:// or unix:// URL (or env:NAME)"},
            ),
        ]
        | None
    ) = None
    """The Redis the gateways share (cooldowns, sessions, controls, posteriors); None, or an
    `env:` variable that is not set: this gateway shares nothing."""
    prefix: Annotated[
        str,
        Meta(
            pattern=r"^[^\s*?\[\]]+$",
            extra={"expected": "a name without spaces or glob characters (* ? [ ])"},
        ),
    ] = "tui-gateway"
    """Namespace of the keys and of the change channel, so that several teams can share a Redis."""
    missing_env: str | None = field(default=None, metadata={"internal": True})
    """The variable `redis_url` named, when it was not set (filled in by the loader)."""


def with_cluster_env(
    cluster: ClusterSettings, unset_env: Mapping[tuple[str | int, ...], str]
) -> ClusterSettings:
    """Note an unset `redis_url = "env:NAME"`: the gateway runs alone, and says so at start."""
    name = unset_env.get(("cluster", "redis_url"))
    return cluster if name is None else replace(cluster, missing_env=name)


def cluster_warnings(cluster: ClusterSettings) -> list[str]:
    if cluster.missing_env is None:
        return []
    return [f"cluster: {cluster.missing_env} not set; this gateway shares no state with others"]


def missing_client(cluster: ClusterSettings) -> str | None:
    """Why a cluster cannot start here (its Redis client is not installed), or None."""
    if not cluster.redis_url:
        return None
    from importlib.util import find_spec

    if find_spec("redis") is not None:
        return None
    return (
        "cluster.redis_url is set, but the Redis client is not installed: "
        "pip install 'tui-gateway[cluster]' (or pip install redis), or leave [cluster] out"
    )
