"""Apply a verified firmware bundle, and roll back: versioned folders and two symlinks.

Layout under the firmware root (``/opt/edge``; ``firmware/install.sh`` makes the first one)::

    versions/<version>/manifest.json   the bundle header
    versions/<version>/venv/           the wheels installed (bin/edge is what the units run)
    versions/<version>/units/, udev/   /etc/systemd/system and /etc/udev/rules.d link to current/...
    versions/<version>/config-before.toml   the config as it was before this version migrated it
    current  -> versions/<version>     switched with one rename(2): the box runs one or the other
    previous -> versions/<version>     what `edge firmware rollback` goes back to

apply: verify -> version newer than current -> unpack and install into versions/<version> (in place:
a venv cannot be moved; manifest.json is written last) -> migrate the config (saving the old one) ->
switch ``previous`` then ``current`` -> prune older versions. Any failure before the switch leaves the
box running what it ran, on the config it had.
"""

from __future__ import annotations

import ensurepip
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from edge.config import toml_dumps
from edge.files import write_atomic
from firmware.bundle import Bundle, FirmwareError, parse_version

DEFAULT_ROOT = "/opt/edge"


def current_version(root) -> str | None:
    return _version_of(Path(root) / "current")


def previous_version(root) -> str | None:
    return _version_of(Path(root) / "previous")


def _version_of(link: Path) -> str | None:
    try:
        return str(json.loads((link / "manifest.json").read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def apply(bundle: Bundle, root=DEFAULT_ROOT, config_path=None, installer=None) -> str | None:
    """Install a verified bundle and switch to it; returns the version switched from (or None)."""
    root = Path(root)
    new, cur = bundle.version, current_version(root)
    if cur is not None and parse_version(new) <= parse_version(cur):
        raise FirmwareError(f"firmware {new} is not newer than the installed {cur}: refused")
    final = root / "versions" / new
    if final.resolve() in _linked(root):
        raise FirmwareError(f"version folder {final} is in use")
    shutil.rmtree(final, ignore_errors=True)  # a leftover of an earlier try; nothing points at it
    final.mkdir(parents=True)
    try:  # built in place (a venv cannot move), switched to only when complete
        unpack(bundle, final)
        carry_over(root / "current", final)
        (installer or pip_install)(final)
        new_config = migrated_config(config_path, bundle.header["migrations"])
        if new_config is not None:
            shutil.copy2(config_path, final / "config-before.toml")
        write_atomic(final / "manifest.json", json.dumps(bundle.header, indent=1, sort_keys=True).encode())
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    if new_config is not None:
        replace_config(Path(config_path), new_config.encode())
    if cur is not None:
        switch(root / "previous", (root / "current").resolve())
    switch(root / "current", final)
    prune(root)
    return cur


def rollback(root=DEFAULT_ROOT, config_path=None) -> tuple[str | None, str]:
    """Switch back to the previous version (and its config); returns (from, to); from is None when the
    current version's manifest is unreadable."""
    root = Path(root)
    cur, prev = current_version(root), previous_version(root)
    if prev is None:
        raise FirmwareError("there is no previous firmware version to roll back to")
    cur_dir = (root / "current").resolve()
    saved = cur_dir / "config-before.toml"
    if config_path and saved.exists():
        replace_config(Path(config_path), saved.read_bytes())
    switch(root / "current", (root / "previous").resolve())
    (root / "previous").unlink()
    return cur, prev


def unpack(bundle: Bundle, dest: Path) -> None:
    for rel, data in bundle.files.items():  # paths were checked by bundle.verify: one flat folder each
        path = dest / rel
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)


def carry_over(current: Path, dest: Path) -> None:
    """Units and udev rules the bundle does not replace are kept: /etc links into current/ must not break."""
    for folder in ("units", "udev"):
        for f in sorted((current / folder).glob("*")) if (current / folder).is_dir() else []:
            if not (dest / folder / f.name).exists():
                (dest / folder).mkdir(exist_ok=True)
                shutil.copy2(f, dest / folder / f.name)


def pip_install(dest: Path) -> None:
    """A venv in ``dest/venv`` with the bundle's wheels, offline (no index, no cache, no pip inside)."""
    venv = dest / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "creating the venv")
    wheels = sorted(str(p) for p in (dest / "wheels").glob("*.whl"))
    run([str(venv / "bin" / "python"), f"{bundled_pip()}/pip", "install", "--quiet", "--no-index",
         "--no-cache-dir", "--disable-pip-version-check", "--find-links", str(dest / "wheels"), *wheels],
        "installing the wheels")


def bundled_pip() -> str:
    """The pip wheel that ships with Python (runnable as a zip): no pip needed in any venv."""
    for folder in (Path(ensurepip.__file__).parent / "_bundled", Path("/usr/share/python-wheels")):
        found = sorted(folder.glob("pip-*.whl"))
        if found:
            return str(found[-1])
    raise FirmwareError("no pip wheel found to install with: apt-get install python3-venv")


def run(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise FirmwareError(f"{what} failed: {last}")


def migrated_config(config_path, migrations: list) -> str | None:
    """The config after the bundle's migrations, or None if there is nothing to change."""
    if not config_path or not migrations or not Path(config_path).exists():
        return None
    try:
        data = tomllib.loads(Path(config_path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FirmwareError(f"cannot migrate {config_path}: {exc}") from None
    for m in migrations:
        migrate(data, m)
    return toml_dumps(data)


def replace_config(path: Path, data: bytes) -> None:
    """Atomically, keeping the file's mode and owner (root:edge 0640: the daemon must still read it)."""
    st = path.stat()
    write_atomic(path, data, st.st_mode & 0o777)
    if os.geteuid() == 0:
        os.chown(path, st.st_uid, st.st_gid)


def migrate(data: dict, m: dict) -> None:
    """One declarative step on a dotted key path: set_default, set, rename (to), remove."""
    *parents, leaf = m["key"].split(".")
    table = data
    for p in parents:
        table = table.setdefault(p, {})
        if not isinstance(table, dict):
            raise FirmwareError(f"migration: {m['key']} is not inside a table")
    if m["op"] == "set" or m["op"] == "set_default" and leaf not in table:
        table[leaf] = m["value"]
    elif m["op"] == "remove":
        table.pop(leaf, None)
    elif m["op"] == "rename" and leaf in table:
        value = table.pop(leaf)
        migrate(data, {"op": "set_default", "key": m["to"], "value": value})


def switch(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically: a new symlink renamed over the old one."""
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


def _linked(root: Path) -> set[Path]:
    return {(root / n).resolve() for n in ("current", "previous") if (root / n).is_symlink()}


def prune(root: Path) -> None:
    """Delete version folders that neither ``current`` nor ``previous`` points at."""
    keep = _linked(root)
    for d in (root / "versions").iterdir():
        if d.is_dir() and d.resolve() not in keep:
            shutil.rmtree(d, ignore_errors=True)
