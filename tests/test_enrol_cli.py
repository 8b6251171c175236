"""The SPOC's side end to end with real images and keys: keygen, build (with per-file problems), inspect,
then the box's `edge trust` / `edge watchlist` commands and `enrol verify-receipt` on what comes back."""

import json
import shutil
import stat
from datetime import UTC, datetime, timedelta

import cv2
import pytest
from click.testing import CliRunner
from wlhelpers import FACES

from edge import identity
from edge.cli import cli as edge_cli
from edge.face import api
from enrol.cli import cli as enrol_cli

REFS = """ref,category,reason,images
PN-0001,wanted,Warrant 12/2026,lin.png
PN-0002,Missing person,Missing since May,alex.png;garbage.jpg
PN-0003,known offender,Bail conditions,two_people.jpg
PN-0004,other,Court order,tiny.png;missing.jpg
PN-0005,villain,Not a category,lin.png
bad ref!,wanted,Not a reference,lin.png
"""


EXPIRES = (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:00Z")


def run(cli, args, ok=True, **kw):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kw)
    assert (res.exit_code == 0) == ok, res.output
    return res


@pytest.fixture(scope="module")
def spoc(tmp_path_factory):
    """Issuer keys, a provisioned box, reference images and refs.csv, and one built list."""
    d = tmp_path_factory.mktemp("spoc")
    run(enrol_cli, ["keygen", "--out", d / "keys", "--no-passphrase", "--name", "SPOC test"])
    images = d / "images"
    images.mkdir()
    shutil.copy(FACES / "lin-manuel-miranda.png", images / "lin.png")
    shutil.copy(FACES / "alex-lacamoire.png", images / "alex.png")
    shutil.copy(FACES / "two_people.jpg", images / "two_people.jpg")
    (images / "garbage.jpg").write_text("not an image")
    small = cv2.resize(api.load_image(FACES / "lin-manuel-miranda.png"), None, fx=0.1, fy=0.1)
    cv2.imwrite(str(images / "tiny.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    (d / "refs.csv").write_text(REFS)
    state = d / "box"
    (d / "edge.toml").write_text(f'box_id = "box-a"\nstate_dir = "{state}"\n'
                                 '[[cameras]]\nid = "cam1"\nsource = "clip.mp4"\n')
    identity.create(state, "box-a")
    args = ["build", "--images", images, "--refs", d / "refs.csv", "--for", state / "keys" / "box.pub.json",
            "--issuer-key", d / "keys" / "issuer.key", "--expires", EXPIRES,
            "--deployment", "Op Test", "--sequence", "10", "-o", d / "list.wlb"]
    res = run(enrol_cli, [*args, "--allow-problems"])
    return {"dir": d, "state": state, "args": args, "build": res}


def test_keygen_writes_a_private_key_only_we_can_read(spoc):
    keys = spoc["dir"] / "keys"
    assert stat.S_IMODE((keys / "issuer.key").stat().st_mode) == 0o600
    pub = json.loads((keys / "issuer.pub").read_text())
    assert pub["type"] == "edge-issuer-ed25519" and pub["name"] == "SPOC test"
    res = run(enrol_cli, ["keygen", "--out", keys, "--no-passphrase"], ok=False)
    assert "refusing to overwrite" in res.output


def test_passphrase_protected_key(tmp_path, spoc, monkeypatch):
    monkeypatch.setenv("ENROL_PASSPHRASE", "correct horse")
    run(enrol_cli, ["keygen", "--out", tmp_path])
    assert b"ENCRYPTED" in (tmp_path / "issuer.key").read_bytes()
    monkeypatch.setenv("ENROL_PASSPHRASE", "wrong")
    res = run(enrol_cli, ["inspect", spoc["dir"] / "list.wlb", "--issuer-key", tmp_path / "issuer.key"], ok=False)
    assert "wrong passphrase" in res.output


def test_build_reports_every_unusable_file_and_row(spoc):
    out = spoc["build"].output
    for line in ["garbage.jpg (PN-0002): the file is not a readable image",
                 "two_people.jpg (PN-0003): 2 faces found, expected one",
                 "tiny.png (PN-0004): face too small",
                 "missing.jpg (PN-0004): cannot read the file",
                 "PN-0003: left out, none of its images could be used",
                 "refs.csv line 6: category must be one of",
                 "refs.csv line 7: reference must be"]:
        assert line in out
    assert f"2 entries from 2 of 6 images, sequence 10, expires {EXPIRES}; 8 problem(s)" in out


def test_strict_build_fails_and_writes_nothing(spoc, tmp_path):
    args = [tmp_path / "strict.wlb" if a == spoc["dir"] / "list.wlb" else a for a in spoc["args"]]
    res = run(enrol_cli, args + ["--jobs", "2"], ok=False)  # strict is the default: refs.csv's rows first
    assert "problem: refs.csv line 6: category must be one of" in res.output
    assert "2 problem(s) in refs.csv and --strict (the default): no face encoded" in res.output
    assert not (tmp_path / "strict.wlb").exists()
    rows = REFS.splitlines()
    (tmp_path / "people.csv").write_text("\n".join(rows[:5]) + "\n")  # only image problems left
    args = [tmp_path / "people.csv" if a == spoc["dir"] / "refs.csv" else a for a in args]
    res = run(enrol_cli, args + ["--strict"], ok=False)
    assert "6 problem(s) and --strict (the default): no list written" in res.output
    assert not (tmp_path / "strict.wlb").exists()


@pytest.mark.parametrize("change, reason", [
    (("--expires", "2001-01-01T00:00Z"), "is not in the future"),
    (("--expires", "next tuesday"), "is not a UTC time"),
    (("--for", "refs"), "is not a box identity file"),
    (("--refs", "for"), "needs the columns ref,category,reason,images"),
])
def test_build_refuses_bad_arguments(spoc, change, reason):
    opt, value = change
    args = list(spoc["args"])
    i = args.index(opt) + 1
    if value in ("refs", "for"):
        value = args[args.index(f"--{value}") + 1]
    args[i] = value
    res = run(enrol_cli, args, ok=False)
    assert reason in res.output and "Traceback" not in res.output


def test_inspect_shows_the_signed_header_without_decrypting(spoc, tmp_path):
    d = spoc["dir"]
    out = run(enrol_cli, ["inspect", d / "list.wlb", "--issuer-key", d / "keys" / "issuer.pub"]).output
    assert "signature: valid" in out and "box-a" in out and "entries: 2" in out and EXPIRES[:10] in out
    h = json.loads(run(enrol_cli, ["inspect", d / "list.wlb", "--issuer-key", d / "keys" / "issuer.key",
                                   "--json"]).output)
    assert h["deployment"] == "Op Test" and h["policy"]["max_entries"] == 10000
    run(enrol_cli, ["keygen", "--out", tmp_path, "--no-passphrase"])
    res = run(enrol_cli, ["inspect", d / "list.wlb", "--issuer-key", tmp_path / "issuer.pub"], ok=False)
    assert "unknown issuer" in res.output


def test_box_loads_the_list_purges_it_and_the_receipt_verifies(spoc, tmp_path):
    d, state = spoc["dir"], spoc["state"]
    box = ["--config", d / "edge.toml"]
    res = run(edge_cli, ["watchlist", "load", d / "list.wlb", *box], ok=False)
    assert "unknown issuer" in res.output
    assert "trusted issuer" in run(edge_cli, ["trust", "add-issuer", d / "keys" / "issuer.pub", *box]).output
    assert "issuer " in run(edge_cli, ["trust", "list", *box]).output
    res = run(edge_cli, ["watchlist", "load", d / "list.wlb", *box], ok=False)
    assert "no deployment window on this box is for deployment 'Op Test' of list" in res.output
    authorise_and_load(d, state, box, tmp_path / "dep.json")
    out = run(edge_cli, ["watchlist", "load", d / "list.wlb", *box]).output
    assert "loaded list" in out and "2 entries" in out and "sequence 10" in out
    st = json.loads(run(edge_cli, ["watchlist", "status", "--json", *box]).output)
    assert st["entries"] == 2 and st["deployment"] == "Op Test" and st["stored"]

    run(edge_cli, ["watchlist", "purge", "--reason", "operation over", "--out", tmp_path / "r.json", *box])
    assert not (state / "watchlist" / "current.wlb").exists()
    assert "no watch list" in run(edge_cli, ["watchlist", "status", *box]).output
    box_pub = state / "keys" / "box.pub.json"
    out = run(enrol_cli, ["verify-receipt", tmp_path / "r.json", "--box", box_pub]).output
    assert "valid: box box-a purged list" in out and "2 entries" in out and "operation over" in out

    forged = json.loads((tmp_path / "r.json").read_text())
    forged["entries"] = 1
    (tmp_path / "f.json").write_text(json.dumps(forged))
    res = run(enrol_cli, ["verify-receipt", tmp_path / "f.json", "--box", box_pub], ok=False)
    assert "forged or was altered" in res.output
    res = run(edge_cli, ["watchlist", "load", d / "list.wlb", *box], ok=False)
    assert "was purged from this box" in res.output


def authorise_and_load(d, state, box, out, lists=("list.wlb",), deployment="Op Test", ok=True):
    """`enrol authorise` a window open now for the lists, then `edge deployment load` it on the box."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%MZ")
    res = run(enrol_cli, ["authorise", "--issuer-key", d / "keys" / "issuer.key",
                          "--for", state / "keys" / "box.pub.json", "--deployment", deployment,
                          *[a for x in lists for a in ("--list", d / x)],
                          "--location", "Concourse", "--camera", "cam1", "--start", fmt(now - timedelta(hours=1)),
                          "--end", fmt(now + timedelta(hours=2)), "--purpose", "test", "-o", out], ok=ok)
    if ok:
        run(edge_cli, ["deployment", "load", out, *box])
    return res


def test_trust_refuses_garbage_key_files(spoc, tmp_path):
    (tmp_path / "bad.pub").write_text("hello")
    box = ["--config", spoc["dir"] / "edge.toml"]
    assert "not JSON" in run(edge_cli, ["trust", "add-issuer", tmp_path / "bad.pub", *box], ok=False).output
    assert "z85" in run(edge_cli, ["trust", "add-console", tmp_path / "bad.pub", *box], ok=False).output


def test_build_refuses_mistakes_before_encoding_a_face(spoc, tmp_path):
    """Issue 25: a typo in a column, an empty reason, a missing output folder, a list that outlives every
    window, a look-alike deployment name: each refused in one sentence naming the real file, nothing written."""
    d, args = spoc["dir"], spoc["args"]
    swap = lambda old, new: [new if a == old else a for a in args]  # noqa: E731
    (tmp_path / "people.csv").write_text("ref,category,reason,images,sorce\nPN-1,wanted,Warrant,lin.png,PNC\n")
    res = run(enrol_cli, swap(d / "refs.csv", tmp_path / "people.csv"), ok=False)
    assert "people.csv has an unknown column 'sorce'" in res.output
    (tmp_path / "people.csv").write_text("ref,category,reason,images\nPN-1,wanted,,lin.png\n")
    res = run(enrol_cli, swap(d / "refs.csv", tmp_path / "people.csv"), ok=False)
    assert "problem: people.csv line 2: a reason is required" in res.output
    res = run(enrol_cli, swap(d / "list.wlb", tmp_path / "no" / "such" / "list.wlb"), ok=False)
    assert "does not exist" in res.output and "faces" not in res.output  # before any face is encoded
    res = run(enrol_cli, swap(EXPIRES, "2036-01-01T00:00Z"), ok=False)
    assert "is more than 31 days away: a list lives for one deployment" in res.output
    res = run(enrol_cli, swap("Op Test", "OpTest"), ok=False)
    assert "deployment 'OpTest' looks like 'Op Test' in your register" in res.output
    assert not any(p.suffix == ".wlb" for p in tmp_path.rglob("*"))


def test_a_short_passphrase_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ENROL_PASSPHRASE", "hunter2")
    res = run(enrol_cli, ["keygen", "--out", tmp_path], ok=False)
    assert "at least 12 characters" in res.output and not (tmp_path / "issuer.key").exists()


def test_the_register_reads_as_a_table(spoc):
    out = run(enrol_cli, ["register", "--issuer-key", spoc["dir"] / "keys" / "issuer.key"]).output
    lines = out.splitlines()
    assert lines[0].split() == ["when", "what", "deployment", "id", "box", "entries", "valid", "file"]
    assert any(ln.split()[1:3] == ["list", "Op"] and "box-a" in ln for ln in lines[1:])
