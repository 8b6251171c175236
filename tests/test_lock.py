"""What was tested is what ships: the running environment holds exactly the locked versions."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)")


def norm(name: str) -> str:
    """PEP 503's normalised name: backports.strenum (installed) is backports-strenum (locked)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / name).read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[norm(m.group(1))] = m.group(2)
    return pins


def test_every_locked_package_is_installed_at_its_locked_version():
    pins = {**locked("requirements.lock"), **locked("requirements-nodeps.lock")}
    assert len(pins) > 40 and "dlib-bin" in pins and "opencv-python-headless" in pins
    wrong = {}
    for name, version in pins.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "missing"
        if have != version:
            wrong[name] = (version, have)
    assert not wrong, f"locked vs installed: {wrong}"


def test_every_dependency_of_the_project_is_locked_with_hashes():
    text = (REPO / "requirements.lock").read_text()
    pins = locked("requirements.lock")
    requires = metadata.requires("edge-lfr") or []
    for req in requires:
        name = norm(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0])
        assert name in pins, f"{name} is a dependency of edge-lfr but not in requirements.lock"
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n\n", 1)[1])
    assert all("--hash=sha256:" in b for b in blocks if PIN.match(b)), "a locked package has no hash"


def test_nothing_is_installed_that_the_lock_does_not_name():
    """Exactly the locked set: a package pip-installed by hand (or pulled in by an unlocked requirement)
    would ship in a firmware bundle's environment untested."""
    pins = {**locked("requirements.lock"), **locked("requirements-nodeps.lock")}
    installed = {norm(d.metadata["Name"]) for d in metadata.distributions()}
    assert installed - set(pins) <= {"edge-lfr", "pip", "setuptools", "wheel"}, installed - set(pins)
