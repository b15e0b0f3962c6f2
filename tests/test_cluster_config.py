"""`[cluster]` in the config (issue 12): a Redis URL, from the file or the environment."""

from __future__ import annotations

import pytest

from tui_gateway.config import ConfigError, settings_from_dict, warnings_for
from tui_gateway.config_cluster import ClusterSettings


def cluster(table: dict[str, str], environ: dict[str, str] | None = None) -> ClusterSettings:
    return settings_from_dict({"cluster": table}, environ=environ or {}).cluster


def test_without_a_cluster_table_nothing_is_shared() -> None:
    assert settings_from_dict({}, environ={}).cluster.redis_url is None


def test_the_redis_url_may_come_from_the_environment_like_a_key() -> None:
    url = "redis://:pw@10.0.0.5:6379/2"
    assert cluster({"redis_url": "env:TG_REDIS"}, {"TG_REDIS": url}).redis_url == url
    unset = settings_from_dict({"cluster": {"redis_url": "env:TG_REDIS"}}, environ={})
    assert unset.cluster.redis_url is None  # runs alone, and says so at start
    assert warnings_for(unset) == [
        "cluster: TG_REDIS not set; this gateway shares no state with others"
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"redis_url": "http://x"},
            "cluster.redis_url: a redis://, rediss:// or unix:// URL (or env:NAME), got 'http://x'",
        ),
        (
            {"prefix": "my team"},
            "cluster.prefix: a name without spaces or glob characters (* ? [ ]), got 'my team'",
        ),
        (
            {"redis": "redis://x"},
            "cluster.redis: a known key (one of: prefix, redis_url); did you mean 'redis_url'?",
        ),
    ],
)
def test_a_bad_cluster_table_names_the_key(table: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cluster(table)
    assert str(caught.value).endswith(message)


def test_a_cluster_without_the_redis_client_installed_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from tui_gateway.config_cluster import ClusterSettings, missing_client

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "redis" else real(name, *a)
    )
    said = missing_client(ClusterSettings(redis_url="redis://127.0.0.1:6379"))
    assert said is not None and "pip install 'tui-gateway[cluster]'" in said
    assert missing_client(ClusterSettings()) is None  # no [cluster]: nothing to install
