"""`enrol build` warns about a list that could put the wrong face beside an alert (issue 18): one
reference whose images are not the same person, and the same image or the same face under two
references. Real images, real encoder, the real CLI; `--strict` makes each warning a failure."""

import shutil

import pytest
from click.testing import CliRunner
from wlhelpers import FACES

from edge import identity
from enrol.cli import cli as enrol_cli

REFS = """ref,category,reason,images
PN-A,wanted,Warrant 1/2026,obama.jpg;biden.jpg
PN-B,wanted,Warrant 2/2026,lin.png
PN-C,other,Court order,lin_copy.png
PN-D,missing person,Missing since May,obama_720.jpg
PN-E,known offender,Bail conditions,alex.png;alex2.jpg
"""


def run(args, ok=True):
    res = CliRunner().invoke(enrol_cli, [str(a) for a in args], catch_exceptions=False)
    assert (res.exit_code == 0) == ok, res.output
    return res


@pytest.fixture(scope="module")
def spoc(tmp_path_factory):
    d = tmp_path_factory.mktemp("warn")
    run(["keygen", "--out", d / "keys", "--no-passphrase"])
    images = d / "images"
    images.mkdir()
    for src, dst in [("obama.jpg", "obama.jpg"), ("biden.jpg", "biden.jpg"), ("lin-manuel-miranda.png", "lin.png"),
                     ("lin-manuel-miranda.png", "lin_copy.png"), ("obama-720p.jpg", "obama_720.jpg"),
                     ("alex-lacamoire.png", "alex.png"), ("alex_lacamoire1.jpg", "alex2.jpg")]:
        shutil.copy(FACES / src, images / dst)
    (d / "refs.csv").write_text(REFS)
    identity.create(d / "box", "box-a")
    args = ["build", "--images", images, "--refs", d / "refs.csv", "--for", d / "box" / "keys" / "box.pub.json",
            "--issuer-key", d / "keys" / "issuer.key", "--expires", "2099-01-01T00:00Z", "--outlives-deployment",
            "--deployment", "Op Test", "-o", d / "list.wlb"]
    return {"dir": d, "args": args, "build": run([*args, "--allow-problems"])}


def test_build_warns_about_mixed_people_and_shared_images_and_faces(spoc):
    out = spoc["build"].output
    assert "warning: PN-A: obama.jpg and biden.jpg look like different people (distance 0.8" in out
    assert "warning: lin_copy.png (PN-C) is the same image as lin.png (PN-B)" in out
    assert "warning: obama_720.jpg (PN-D) is the same face as obama.jpg (PN-A) (distance 0.0" in out
    assert "PN-E" not in out.split("operating point")[0]  # two photos of one person: no warning
    assert "3 warning(s)" in out
    assert (spoc["dir"] / "list.wlb").exists()  # warnings alone do not stop a build


def test_strict_build_fails_on_warnings_and_writes_nothing(spoc, tmp_path):
    args = [tmp_path / "strict.wlb" if a == spoc["dir"] / "list.wlb" else a for a in spoc["args"]]
    res = run(args + ["--strict"], ok=False)
    assert "3 warning(s) and --strict (the default): no list written" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "strict.wlb").exists()


def test_check_list_unit():
    """The rule on descriptors directly: far within a reference, near (or identical bytes) across two."""
    import numpy as np

    from enrol.build import check_list

    a, b = np.zeros(128, np.float32), np.zeros(128, np.float32)
    b[0] = 0.7
    c = a.copy()
    c[1] = 0.1
    got = check_list([("R1", [("x.jpg", "h1", a), ("y.jpg", "h2", b)]), ("R2", [("z.jpg", "h3", c)]),
                      ("R3", [("w.jpg", "h2", b + 5)])])
    assert got == ["R1: x.jpg and y.jpg look like different people (distance 0.70)",
                   "z.jpg (R2) is the same face as x.jpg (R1) (distance 0.10)",
                   "w.jpg (R3) is the same image as y.jpg (R1)"]
