"""The command line as a user meets it: init, config mistakes, headless start-up and shutdown."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI
from typer.testing import CliRunner

from tests.factories import LISTENING, SIM_CONFIG, headless_gateway
from tui_gateway.cli import app
from tui_gateway.config import load_settings

runner = CliRunner()


def test_init_writes_a_starter_config_that_loads(tmp_path: Path) -> None:
    target = tmp_path / "conf" / "config.toml"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.output
    assert len(load_settings(target).models) >= 3
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code == 2 and "already exists; pass --force" in again.output
    assert runner.invoke(app, ["init", str(target), "--force"]).exit_code == 0


def test_init_without_path_uses_the_user_config_dir() -> None:
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0
    assert Path(os.environ["XDG_CONFIG_HOME"], "tui-gateway", "config.toml").exists()


def test_no_config_says_how_to_get_one() -> None:
    result = runner.invoke(app, ["--headless"])
    assert result.exit_code == 2
    assert "no config at" in result.output and "tui-gateway init" in result.output
    assert "tui-gateway --demo" in result.output
    assert "Traceback" not in result.output


def test_bad_config_names_file_and_key_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[routing]\nmax_attempts = 'many'\n")
    result = runner.invoke(app, ["--config", str(path), "--headless"])
    assert result.exit_code == 2
    assert (
        f"config error in {path}: routing.max_attempts: a whole number, got a string"
        in result.output
    )
    assert "Traceback" not in result.output


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    config = tmp_path / "c.toml"
    config.write_text(SIM_CONFIG)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["--config", str(config), "--port", str(port), "--headless"])
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.output


@pytest.fixture
def headless(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    with headless_gateway(tmp_path) as running:
        yield running


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_headless_serves_then_shuts_down_cleanly_with_the_log_flushed(
    headless: tuple[subprocess.Popen[str], str, Path], signum: int
) -> None:
    proc, url, db = headless
    with OpenAI(base_url=url, api_key="cli-key", max_retries=0) as client:
        for _ in range(3):
            reply = client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.model == "quick"
    proc.send_signal(signum)
    assert proc.wait(15) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), min(status) FROM requests").fetchone() == (3, 200)


def test_headless_demo_needs_no_keys_and_serves(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "tui_gateway", "--demo", "--headless", "--port", "0",
         "--db", str(tmp_path / "demo.db")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            match = LISTENING.match(proc.stdout.readline().strip())
            assert match
            proc.stdout.readline()
            key = proc.stdout.readline().strip().removeprefix("OPENAI_API_KEY=")
            with OpenAI(base_url=match.group(1), api_key=key, max_retries=0) as client:
                models = [m.id for m in client.models.list()]
                assert {"auto", "auto-fast", "auto-smart", "swift/swift-mini"} <= set(models)
                reply = client.chat.completions.create(
                    model="swift/swift-mini", messages=[{"role": "user", "content": "hi"}]
                )
                assert reply.choices[0].message.content
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0


def test_headless_path_never_imports_textual() -> None:
    code = "import sys, tui_gateway.cli, tui_gateway.server, tui_gateway.demo; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_domain_imports_no_io_libraries() -> None:
    code = (
        "import sys, tui_gateway.domain.routing, tui_gateway.domain.state; "
        "print(sorted(m for m in ('aiohttp', 'aiosqlite', 'textual') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unusable_db_path_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(SIM_CONFIG)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = runner.invoke(
        app, ["--config", str(config), "--db", str(blocker / "x.db"), "--headless"]
    )
    assert result.exit_code == 2
    assert f"cannot use {blocker / 'x.db'} as the request log" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("version", [0, 3])
def test_another_program_s_database_as_db_is_a_clear_error_and_left_as_it_was(
    tmp_path: Path, version: int
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(SIM_CONFIG)
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as db:  # has a `requests` table, as many programs' would
        db.execute("CREATE TABLE requests (url TEXT)")
        db.execute("INSERT INTO requests VALUES ('https://example.com')")
        db.execute(f"PRAGMA user_version = {version}")
    before = other.read_bytes()
    result = runner.invoke(app, ["--config", str(config), "--db", str(other), "--headless"])
    assert result.exit_code == 2, result.output
    assert f"cannot use {other} as the request log" in result.output
    assert "not a tui-gateway request log" in result.output
    assert "Traceback" not in result.output
    assert other.read_bytes() == before


def test_a_migration_that_fails_says_which_step_and_leaves_the_log_at_its_version(
    tmp_path: Path,
) -> None:
    from tui_gateway.store.schema import MIGRATIONS, sql_migrations

    config = tmp_path / "c.toml"
    config.write_text(SIM_CONFIG)
    log = tmp_path / "log.db"
    last = len(MIGRATIONS)
    with sqlite3.connect(log) as db:  # the last step's index is there already: it cannot run
        db.executescript(sql_migrations())
        db.execute(f"PRAGMA user_version = {last - 1}")
    result = runner.invoke(app, ["--config", str(config), "--db", str(log), "--headless"])
    assert result.exit_code == 2, result.output
    assert f"from version {last - 1} to {last} failed" in result.output
    assert "Traceback" not in result.output
    with sqlite3.connect(log) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (last - 1,)


def test_a_log_built_from_the_schema_script_opens_as_it_is(tmp_path: Path) -> None:
    from tui_gateway.store.schema import MIGRATIONS, sql_migrations

    log = tmp_path / "log.db"  # where headless_gateway points --db
    with sqlite3.connect(log) as db:  # as tools and the benchmarks build one
        db.executescript(sql_migrations())
    with headless_gateway(tmp_path) as (_proc, base_url, db_path):
        assert db_path == log and base_url.startswith("http://127.0.0.1:")
    with sqlite3.connect(log) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)


def test_init_offers_providers_whose_key_is_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "g")
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    target = tmp_path / "c.toml"
    assert runner.invoke(app, ["init", str(target)]).exit_code == 0
    text = target.read_text()
    assert '# preset = "gemini"' in text and "mistral" not in text
    load_settings(target)  # the offers are comments: the file still loads
