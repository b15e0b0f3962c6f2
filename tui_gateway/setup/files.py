"""Merge settings into a client's own config file without losing anything the user wrote.

A merge reads the file, applies a `Merge` to it through a library that keeps comments and
layout (`tomlkit` for TOML, `ruamel.yaml` for YAML; JSON has no comments to keep), and checks
the result before it writes: the new file, read back with a strict parser, must hold exactly the
old settings with ours applied. Nothing is written when nothing would change; otherwise the old
file is copied to `<file>.bak-<timestamp>` first and the new one replaces it atomically.
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import stat
import tomllib
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import tomlkit
import tomlkit.exceptions
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError


class SetupError(Exception):
    """A user-facing problem: the message says what is wrong and what was (not) changed."""


# --- what to change ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MergeKeys:
    """Set these keys in the top-level mapping; nested mappings are merged key by key."""

    values: Mapping[str, Any]
    initial: Mapping[str, Any] = field(default_factory=dict)
    """Keys an empty or new file starts with (a schema line, required fields)."""


@dataclass(frozen=True, slots=True)
class UpsertEntries:
    """Put each entry into a list of mappings, updating the one whose `id_key` matches."""

    id_key: str
    entries: tuple[Mapping[str, Any], ...]
    list_key: str | None = None
    """The top-level key holding the list; None when the document itself is the list."""
    initial: Mapping[str, Any] = field(default_factory=dict)
    """Keys an empty or new file starts with (a schema line, required fields)."""


Merge = MergeKeys | UpsertEntries

Make = Callable[[Mapping[str, Any]], Any]
"""Turns a new mapping of ours into the document library's own type (identity for plain data)."""


def _plain(values: Mapping[str, Any]) -> Any:
    return copy.deepcopy(dict(values))


def apply_merge(doc: Any, merge: Merge, *, make: Make = _plain) -> Any:
    """Apply `merge` to `doc` (None: an empty file) in place where it can; return the document.

    Raises:
        SetupError: a value we must merge into has the wrong type (say `"env": "x"`); the
            message names its key so the user can fix it by hand.
    """
    if isinstance(merge, MergeKeys):
        if doc is None:
            doc = make(merge.initial)
        _require_mapping(doc, "the top level")
        _merge_mapping(doc, merge.values, make=make, where="")
        return doc
    if merge.list_key is None:
        if doc is None:
            doc = []
        if not isinstance(doc, MutableSequence):
            raise SetupError(f"the top level is {_kind(doc)}, not a list")
        items = doc
        where = "the top-level list"
    else:
        if doc is None:
            doc = make(merge.initial)
        _require_mapping(doc, "the top level")
        if merge.list_key not in doc or doc[merge.list_key] is None:
            doc[merge.list_key] = []
        items = doc[merge.list_key]
        where = merge.list_key
        if not isinstance(items, MutableSequence):
            raise SetupError(f"{where} is {_kind(items)}, not a list")
    for entry in merge.entries:
        ident = entry[merge.id_key]
        for n, item in enumerate(items):
            if isinstance(item, MutableMapping) and item.get(merge.id_key) == ident:
                _merge_mapping(item, entry, make=make, where=f"{where}[{n}].")
                break
        else:
            items.append(make(entry))
    return doc


def _merge_mapping(
    target: MutableMapping[str, Any], ours: Mapping[str, Any], *, make: Make, where: str
) -> None:
    for key, value in ours.items():
        if isinstance(value, Mapping):
            if key not in target or target[key] is None:
                target[key] = make(value)
                continue
            _require_mapping(target[key], f"{where}{key}")
            _merge_mapping(target[key], value, make=make, where=f"{where}{key}.")
        elif key not in target or target[key] != value:
            target[key] = copy.deepcopy(value)


def _require_mapping(value: Any, where: str) -> None:
    if not isinstance(value, MutableMapping):
        raise SetupError(f"{where} is {_kind(value)}, not a table of settings")


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, MutableSequence):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


# --- file formats -----------------------------------------------------------------------------


class Format(Protocol):
    """One file format: a strict reader for checking, a round-trip editor that keeps layout."""

    name: str

    def read(self, text: str) -> Any:
        """Plain data (dicts, lists, scalars) or None for an empty file; ValueError if invalid."""
        ...

    def edit(self, text: str, merge: Merge) -> str:
        """The text with `merge` applied, keeping what the format's library can keep."""
        ...

    def snippet(self, merge: Merge) -> str:
        """What the merge adds, as a fresh document to show the user."""
        ...


class JsonFormat:
    name = "JSON"

    def read(self, text: str) -> Any:
        if not text.strip():
            return None
        return json.loads(text)

    def edit(self, text: str, merge: Merge) -> str:
        return self._dump(apply_merge(self.read(text), merge))

    def snippet(self, merge: Merge) -> str:
        return self._dump(apply_merge(None, merge))

    @staticmethod
    def _dump(doc: Any) -> str:
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


class TomlFormat:
    name = "TOML"

    def read(self, text: str) -> Any:
        return tomllib.loads(text)  # a table even when empty, as tomlkit's document is

    def edit(self, text: str, merge: Merge) -> str:
        try:
            doc = tomlkit.parse(text)
        except tomlkit.exceptions.TOMLKitError as exc:
            raise ValueError(str(exc)) from exc
        return tomlkit.dumps(apply_merge(doc, merge, make=_toml_table)).rstrip("\n") + "\n"

    def snippet(self, merge: Merge) -> str:
        return self.edit("", merge)


def _toml_table(values: Mapping[str, Any]) -> Any:
    """A table of values, with a blank line after it; a table of tables becomes `[a.b]` headers."""
    if values and all(isinstance(v, Mapping) for v in values.values()):
        return {k: _toml_table(v) for k, v in values.items()}  # tomlkit makes a super table
    table = tomlkit.table()
    for key, value in values.items():
        table[key] = _toml_table(value) if isinstance(value, Mapping) else copy.deepcopy(value)
    table.add(tomlkit.nl())
    return table


class YamlFormat:
    name = "YAML"

    def read(self, text: str) -> Any:
        try:
            return YAML(typ="safe", pure=True).load(text)
        except YAMLError as exc:
            raise ValueError(_yaml_problem(exc)) from exc

    def edit(self, text: str, merge: Merge) -> str:
        yaml = YAML()  # round-trip: keeps comments, key order, quoting and flow style
        yaml.preserve_quotes = True
        yaml.width = 4096  # never re-fold the user's long lines
        try:
            mapping, sequence, offset = _yaml_indent(text, merge)
            yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
            doc = yaml.load(text)
        except YAMLError as exc:
            raise ValueError(_yaml_problem(exc)) from exc
        out = io.StringIO()
        yaml.dump(apply_merge(doc, merge), out)
        return out.getvalue()

    def snippet(self, merge: Merge) -> str:
        return self.edit("", merge)


def _yaml_problem(exc: YAMLError) -> str:
    """`expected <block end>, but found '<block mapping start>' (line 3, column 4)`."""
    if isinstance(exc, MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{exc.problem}{where}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _yaml_indent(text: str, merge: Merge) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as the file already indents, for ruamel's one setting.

    ruamel.yaml indents the whole file one way when it writes; using the file's own way keeps
    the user's lines as they were. `load_yaml_guess_indent` mixes mapping and list indents up, so
    this looks at the first nested mapping and the first list under a key.
    """
    mapping: int | None = None
    offset: int | None = None
    parent: int | None = None  # indent of the previous line when it was `key:` with nothing after
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if parent is not None and indent >= parent:
            if stripped.startswith("- ") or stripped == "-":
                offset = indent - parent if offset is None else offset
            elif indent > parent:
                mapping = indent - parent if mapping is None else mapping
        parent = indent if stripped.endswith(":") and not stripped.startswith("-") else None
    if offset is None:
        top_list = isinstance(merge, UpsertEntries) and merge.list_key is None
        offset = 0 if top_list else 2  # continue's docs: `models:` then `  - name: ...`
    return mapping or 2, offset + 2, offset


JSON = JsonFormat()
TOML = TomlFormat()
YAML_FORMAT = YamlFormat()


# --- reading and writing a file ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteResult:
    path: Path
    """The file written (a symlink's target, so a dotfiles link stays a link)."""
    changed: bool
    """False: the file already held these settings and was not touched."""
    created: bool
    backup: Path | None
    """The copy of the previous file, when there was one and it changed."""


def merge_file(
    path: Path, fmt: Format, merge: Merge, *, secret: bool, now: datetime
) -> WriteResult:
    """Merge into `path` (created if missing), keeping a backup; nothing changes on any error.

    Args:
        secret: the merge puts the gateway key in the file, so a new file is made owner-only.
        now: names the backup.
    """
    real = path.resolve() if path.is_symlink() else path
    old_text = _read_text(real)
    try:
        before = fmt.read(old_text or "")
        new_text = fmt.edit(old_text or "", merge)
    except ValueError as exc:
        raise SetupError(
            f"{path} is not valid {fmt.name}: {exc}\n  left it unchanged; fix it (or move it "
            "away) and run this again"
        ) from exc
    except SetupError as exc:
        raise SetupError(f"cannot merge into {path}: {exc}; left it unchanged") from exc
    expected = apply_merge(copy.deepcopy(before), merge)
    try:
        after = fmt.read(new_text)
    except ValueError:
        after = object()
    if after != expected:  # the library lost or bent something: refuse rather than damage it
        raise SetupError(
            f"cannot merge into {path} safely: the result would not read back as your settings "
            "plus ours; left it unchanged, add the snippet by hand"
        )
    if old_text is not None and after == before:
        return WriteResult(path=real, changed=False, created=False, backup=None)
    backup = None
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        if old_text is not None:
            backup = _backup_path(real, now)
            shutil.copy2(real, backup)
        _replace(real, new_text, secret=secret)
    except OSError as exc:
        raise SetupError(f"cannot write {real}: {exc.strerror or exc}") from exc
    return WriteResult(path=real, changed=True, created=old_text is None, backup=backup)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise SetupError(f"{path} is not UTF-8 text; left it unchanged") from exc
    except OSError as exc:
        raise SetupError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _backup_path(path: Path, now: datetime) -> Path:
    stem = f"{path.name}.bak-{now:%Y%m%d-%H%M%S}"
    candidate = path.with_name(stem)
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{stem}-{n}")
        n += 1
    return candidate


def _replace(path: Path, text: str, *, secret: bool) -> None:
    """Write beside the file, then rename over it: a crash leaves the old file or the new one."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600 if secret else 0o644
    tmp = path.with_name(f".{path.name}.tui-gateway-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(tmp, mode)  # an existing file keeps its own mode, whatever the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
