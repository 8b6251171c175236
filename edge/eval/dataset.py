"""An evaluation data set: a folder of identity subfolders, optionally with a ``groups.csv``.

    DATASET/
      person_a/001.jpg 002.jpg ...
      person_b/...
      groups.csv          # optional: identity,group  (one row per identity; header optional)

Images are ``.jpg``, ``.jpeg``, ``.png``, ``.bmp`` or ``.webp``; hidden files and folders are
ignored. Nothing is decoded here: this only lists files and reads the grouping.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import EdgeError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
NO_GROUP = "(no group)"


@dataclass
class Dataset:
    root: Path
    identities: list[str]  # sorted folder names
    images: list[tuple[int, Path]]  # (identity index, path), sorted by identity then file name
    groups: dict[str, str] = field(default_factory=dict)  # identity -> label; empty = no grouping

    def group_of(self, identity: str) -> str:
        return self.groups.get(identity, NO_GROUP)

    def relpath(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def load(root: str | Path, groups_csv: str | Path | None = None) -> Dataset:
    """List DATASET's identity folders and images; read ``groups_csv`` (default DATASET/groups.csv)."""
    root = Path(root)
    if not root.is_dir():
        raise EdgeError(f"dataset {root} is not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    identities: list[str] = []
    images: list[tuple[int, Path]] = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            images += [(len(identities), p) for p in files]
            identities.append(folder.name)
    if len(identities) < 2:
        raise EdgeError(f"dataset {root} needs at least 2 identity folders holding images "
                        f"(found {len(identities)}); lay it out as DATASET/person/*.jpg")
    if groups_csv is None and (root / "groups.csv").is_file():
        groups_csv = root / "groups.csv"
    groups = read_groups(Path(groups_csv), set(identities)) if groups_csv else {}
    return Dataset(root, identities, images, groups)


def read_groups(path: Path, identities: set[str]) -> dict[str, str]:
    """``identity,group`` rows -> {identity: group}. Unknown identities and duplicates are errors."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EdgeError(f"cannot read groups file {path}: {exc}") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["identity", "group"]:
        rows = rows[1:]
    groups: dict[str, str] = {}
    for n, row in enumerate(rows, 1):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise EdgeError(f"{path}: row {n} must be 'identity,group'")
        ident, label = row[0].strip(), row[1].strip()
        if ident not in identities:
            raise EdgeError(f"{path}: row {n} names identity {ident!r}, which has no folder of images")
        if ident in groups:
            raise EdgeError(f"{path}: identity {ident!r} is listed twice")
        groups[ident] = label
    return groups
