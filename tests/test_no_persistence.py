"""Nothing of a passer-by reaches disk: every file the daemon writes during a run is inspected.

Camera B shows five people, none of them on the list (which holds only Lin-Manuel Miranda, who
appears on camera A). After the run, every file under the state dir, the daemon's own temp dir and its
log is compared with the snapshot taken before: only the audit log, the alert outbox and the control
socket may be new or changed, none may hold a face image other than the listed person's alerts, and
none may hold a face template (a run of numbers the size of a descriptor).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time

from conftest import (
    CAMERA_B,
    LIN_REF,
    hamilton_box,
    running_daemon,
)

from edge import identity

JPEG_B64 = b"/9j/"  # base64 of a JPEG's first bytes
FLOAT_RUN = re.compile(rb"(-?\d+\.\d+\s*,\s*){15,}")  # 16+ numbers in a row: a template, or part of one
# keys/box.pub.json: the box's public identity, declaring the face model it runs (written when that changes)
ALLOWED = re.compile(r"^(audit/(audit\.(log|head|lock)|last-config\.json)|audit\.anchor|outbox\.db(-wal|-shm)?"
                     r"|control\.sock|keys/box\.pub\.json)$")


def snapshot(*roots):
    out = {}
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file() or p.is_socket():
                st = p.stat()
                out[p] = (st.st_size, st.st_mtime_ns)
    return out


def test_no_file_holds_a_non_matching_face(tmp_path):
    cfg, endpoint, state = hamilton_box(tmp_path, cameras=({"id": "cam-b", "source": CAMERA_B},))
    tmpdir = tmp_path / "tmp"
    identity.create(state, "test-box")  # a provisioned box
    tmpdir.mkdir()
    before = snapshot(state, tmpdir)
    with running_daemon(cfg, "--duration", "16", env={"TMPDIR": str(tmpdir)}) as proc:
        proc.wait(90)
    time.sleep(0.2)
    after = snapshot(state, tmpdir)
    log = (tmp_path / "daemon.log").read_bytes()

    changed = [p for p in after if before.get(p) != after[p]]
    names = sorted(str(p.relative_to(state)) for p in changed if state in p.parents)
    assert all(ALLOWED.match(n) for n in names), names
    # (a library may leave a session id in the temp dir; its content is checked like every other file)

    # the outbox holds alerts and events only, every alert is the listed person seen on camera A
    db = sqlite3.connect(state / "outbox.db")
    tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
    alerts, others = [], 0
    for table in tables:
        for row in db.execute(f"select * from {table}"):  # noqa: S608 - table names from sqlite_master
            for cell in row:
                if isinstance(cell, str | bytes) and (b'"type":"alert"' in (cell if isinstance(cell, bytes)
                                                                            else cell.encode())):
                    alerts.append(json.loads(cell))
                elif isinstance(cell, str | bytes):
                    others += JPEG_B64 in (cell if isinstance(cell, bytes) else cell.encode())
    db.close()
    assert alerts, log.decode()[-2000:]
    assert {(a["camera_id"], a["ref"]) for a in alerts} == {("cam-a", LIN_REF)}
    assert others == 0

    # five unlisted people were encoded on camera B, and no trace of them is left anywhere
    assert b"cam-b" in log and b"encodes" in log
    for p in changed:
        data = p.read_bytes() if p.is_file() else b""
        if p.name.startswith("outbox.db"):
            continue  # checked row by row above (WAL pages repeat the same rows)
        assert JPEG_B64 not in data and b"\xff\xd8\xff" not in data, p
        assert not FLOAT_RUN.search(data), p
    assert JPEG_B64 not in log and b"\xff\xd8\xff" not in log
    assert not FLOAT_RUN.search(log)
