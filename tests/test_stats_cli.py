"""`tui-gateway stats` on a log written by the real writer, and `GET /gateway/stats` on a running
gateway after real requests through the mock upstream (issue 14)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import openai
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from tests.factories import API_KEY, make_settings, model, start_gateway
from tests.logged import logged
from tests.test_analytics import NOW, known_log, write_log
from tui_gateway.cli import app
from tui_gateway.domain.records import RequestRecord
from tui_gateway.server import Gateway
from tui_gateway.store.analytics import CATEGORIES, Analytics, read_analytics

runner = CliRunner()


def recent_log(path: Path) -> None:
    """The known log of test_analytics.py, moved so that its hour ends now."""
    shift = time.time() - NOW

    def moved(r: RequestRecord) -> RequestRecord:
        attempts = tuple(msgspec.structs.replace(a, started=a.started + shift) for a in r.attempts)
        return msgspec.structs.replace(r, started=r.started + shift, attempts=attempts)

    asyncio.run(write_log(path, [moved(r) for r in known_log()]))


def stats(*args: str, **env: str) -> Any:
    return runner.invoke(app, ["stats", *args], env={"COLUMNS": "200", **env})


def test_json_is_the_analytics_of_the_log_field_by_field(tmp_path: Path) -> None:
    recent_log(tmp_path / "log.db")
    result = stats("--range", "1h", "--json", "--db", str(tmp_path / "log.db"))
    assert result.exit_code == 0, result.output
    shown = msgspec.json.decode(result.stdout, type=Analytics)
    expected = asyncio.run(read_analytics(tmp_path / "log.db", "1h", now=shown.until))
    for field in msgspec.structs.fields(Analytics):
        assert getattr(shown, field.name) == getattr(expected, field.name), field.name
    assert (shown.range, shown.requests, shown.succeeded, shown.failed) == ("1h", 18, 14, 4)
    assert (shown.fallbacks, shown.continuations, len(shown.series)) == (11, 2, 60)
    assert [(u.model, u.requests) for u in shown.models] == [
        ("p1/a", 12), ("p1/b", 3), (None, 2), ("p2/c", 1),
    ]  # fmt: skip
    assert [(e.provider, e.total) for e in shown.errors] == [("p2", 9), ("p1", 6)]


def test_the_table_names_every_model_provider_and_category(tmp_path: Path) -> None:
    recent_log(tmp_path / "log.db")
    result = stats("--range", "1h", "--db", str(tmp_path / "log.db"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "last 1h" in out and "18 requests, 77.8% succeeded, 11 fell back, 2 continued" in out
    assert "requests (green) and failed (red) per 1 min, oldest first" in out
    for name in ("p1/a", "p1/b", "p2/c", "(no model)", "per model", "per provider", *CATEGORIES):
        assert name in out, name
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["p1/a"])
    assert row[:7] == ["p1/a", "12", "83.3%", "500", "ms", "1000", "ms"]


def test_a_config_names_its_models_that_had_no_request(tmp_path: Path) -> None:
    recent_log(tmp_path / "log.db")
    config = tmp_path / "c.toml"
    config.write_text(
        '[[providers]]\nname = "p1"\nkind = "simulated"\n'
        '[[models]]\nprovider = "p1"\nid = "a"\n[[models]]\nprovider = "p1"\nid = "idle"\n'
    )
    result = stats("--range", "1h", "--db", str(tmp_path / "log.db"), "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "configured, no requests in the range: p1/idle" in result.stdout


def test_the_gateways_own_flags_pick_the_log(tmp_path: Path) -> None:
    recent_log(tmp_path / "log.db")
    result = runner.invoke(app, ["--db", str(tmp_path / "log.db"), "stats", "--json"])
    assert result.exit_code == 0, result.output
    assert msgspec.json.decode(result.stdout)["range"] == "24h"
    demo = runner.invoke(app, ["--demo", "stats"])
    assert demo.exit_code == 2 and "demo.db" in demo.stderr


def one_line_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return str(lines[0])


def test_a_bad_range_or_log_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    recent_log(tmp_path / "log.db")
    bad = one_line_error(stats("--range", "2d", "--db", str(tmp_path / "log.db")))
    assert bad == "tui-gateway: unknown range '2d'; use one of 1h, 24h, 7d, 30d"
    missing = one_line_error(stats("--db", str(tmp_path / "nowhere.db")))
    assert missing.startswith(f"tui-gateway: no request log at {tmp_path / 'nowhere.db'}")
    assert not (tmp_path / "nowhere.db").exists()
    (tmp_path / "notes.txt").write_text("not a database, just words\n" * 100)
    garbage = one_line_error(stats("--db", str(tmp_path / "notes.txt")))
    assert garbage.startswith(f"tui-gateway: cannot read {tmp_path / 'notes.txt'} as a request log")


# --- GET /gateway/stats on a running gateway -------------------------------------------------


async def get_stats(gateway: Gateway, query: str = "", key: str = API_KEY) -> tuple[int, Any]:
    url = gateway.base_url.removesuffix("/v1") + "/gateway/stats" + query
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, await response.json()


async def test_the_endpoint_counts_what_was_sent_and_refuses_a_bad_range(
    tmp_path: Path, mock_url: str, mock_upstream: TestServer
) -> None:
    """The first model answers 500 (then cools down): one request falls back, all succeed."""
    settings = make_settings(mock_url, [model("mock", "error-500"), model("mock", "ok:chunks=3")])
    gateway = await start_gateway(settings, tmp_path / "g.db")
    try:
        async with openai.AsyncOpenAI(
            base_url=gateway.base_url, api_key=API_KEY, max_retries=0
        ) as sdk:
            for i in range(5):
                await sdk.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": f"q{i}"}], stream=i % 2 == 1
                )
        status, body = await get_stats(gateway, "?range=1h")  # no flush: the endpoint does it
        rows = await logged(gateway.request_log)
        default_status, default = await get_stats(gateway)
        refused, error = await get_stats(gateway, "?range=fortnight")
        unauthorized, _ = await get_stats(gateway, key="wrong")
        _, after = await get_stats(gateway, "?range=1h")
    finally:
        await gateway.stop()

    assert status == 200
    figures = msgspec.convert(body, Analytics)
    fallbacks = sum(len(r.attempts) > 1 for r in rows)
    assert len(rows) == 5 and fallbacks == 1
    assert (figures.range, figures.requests, figures.succeeded, figures.failed) == ("1h", 5, 5, 0)
    assert (figures.fallbacks, figures.continuations) == (fallbacks, 0)
    assert [(u.model, u.requests, u.succeeded) for u in figures.models] == [
        ("mock/ok:chunks=3", 5, 5)
    ]
    assert [(u.provider, u.requests) for u in figures.providers] == [("mock", 5)]
    [errors] = figures.errors
    assert (errors.provider, errors.counts["server"], errors.total) == ("mock", 1, 1)
    assert figures.models[0].latency_p50_ms is not None
    assert figures.models[0].ttfb_p50_ms is not None  # two of them streamed
    assert (default_status, default["range"], default["requests"]) == (200, "24h", 5)

    assert refused == 400
    assert error == {
        "error": {
            "message": "'range' must be one of 1h, 24h, 7d, 30d",
            "type": "invalid_request_error",
            "param": "range",
            "code": None,
        }
    }
    assert unauthorized == 401
    # Both refusals are requests of the log too, with no model: a row of their own.
    assert after["requests"] == 7
    assert [(u["model"], u["requests"], u["succeeded"]) for u in after["models"]] == [
        ("mock/ok:chunks=3", 5, 5), (None, 2, 0),
    ]  # fmt: skip
