"""firmware/install.sh --console on this machine, sealed off in a private mount namespace (overlays over
/etc, /var/lib, /usr/local, /root and a tmpfs /opt: the host is not changed): the console user can read the
boxes' public identities, the unit's EnvironmentFile exists, only edge-console.service is enabled, and the
console then starts as its unit starts it, as its user, and serves its page. The apt and pip steps are left
out (EDGE_INSTALL_STEPS): the venv is this test's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import free_port

from edge import identity

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="needs root and unshare (a private mount namespace)")


def unit_line(name: str, key: str) -> str:
    return next(ln.split("=", 1)[1] for ln in (ROOT / "systemd" / name).read_text().splitlines()
                if ln.startswith(key + "="))


def test_install_console_leaves_a_console_that_starts(tmp_path):
    identity.create(tmp_path / "box", "box-1")
    (tmp_path / "vendor.pub").write_text("{}\n")
    port, box_port = free_port(), free_port()
    env_file, exec_start = unit_line("edge-console.service", "EnvironmentFile"), unit_line("edge-console.service",
                                                                                          "ExecStart")
    venv = Path(sys.executable).parent.parent
    args = f"--listen 127.0.0.1:{port} --box tcp://127.0.0.1:{box_port}=/etc/edge-console/boxes/box-1.pub.json"
    script = textwrap.dedent(f"""\
        set -eu
        for d in /etc /var/lib /usr/local /root; do
          n=$(echo $d | tr / _); mkdir -p {tmp_path}/up$n {tmp_path}/work$n
          mount -t overlay overlay -o lowerdir=$d,upperdir={tmp_path}/up$n,workdir={tmp_path}/work$n $d
        done
        mount -t tmpfs tmpfs /opt
        chmod 0711 /root  # in the overlay only: the service users may run this test's Python
        V=/opt/edge/versions/test; mkdir -p $V/units $V/udev
        ln -s {venv} $V/venv
        cp {ROOT}/systemd/*.service {ROOT}/firmware/edge-usb@.service $V/units/
        cp {ROOT}/firmware/99-edge-usb.rules $V/udev/
        ln -s versions/test /opt/edge/current
        ln -sf /opt/edge/current/venv/bin/edge /usr/local/bin/edge
        export PYTHONPATH={ROOT}
        EDGE_INSTALL_STEPS="users units dirs console enable" bash {ROOT}/firmware/install.sh --console \\
          --vendor-key {tmp_path}/vendor.pub > {tmp_path}/install.out
        ls /etc/systemd/system/multi-user.target.wants/ > {tmp_path}/enabled
        test -f {env_file} && echo "env file present"
        test -f /var/lib/edge-console/console.pub && echo "console key made"
        install -m 0644 {tmp_path}/box/keys/box.pub.json /etc/edge-console/boxes/box-1.pub.json
        runuser -u edge-console -- cat /etc/edge-console/boxes/box-1.pub.json > /dev/null && echo "box key readable"
        echo secret-pass | runuser -u edge-console -- edge console adduser alice --data /var/lib/edge-console \\
          --password-stdin > /dev/null
        sed -i 's|^EDGE_CONSOLE_ARGS=.*|EDGE_CONSOLE_ARGS={args}|' {env_file}
        EDGE_CONSOLE_ARGS=$(sed -n 's/^EDGE_CONSOLE_ARGS=//p' {env_file})  # as systemd reads it
        runuser -u edge-console -- {exec_start} > {tmp_path}/console.out 2>&1 &
        pid=$!
        {sys.executable} -c "
        import time, urllib.request
        for _ in range(120):
            try:
                print('console answers', urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2).status); break
            except OSError:
                time.sleep(0.5)
        "
        kill $pid
        """)
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
                       capture_output=True, text=True, timeout=300)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr + (tmp_path / "install.out").read_text()
    enabled = (tmp_path / "enabled").read_text().split()
    assert "edge-console.service" in enabled and "edge.service" not in enabled  # a console machine runs no box
    assert "env file present" in out and "console key made" in out and "box key readable" in out
    assert "console answers 200" in out, out + (tmp_path / "console.out").read_text()
    assert not Path("/etc/edge-console").exists()  # the host was not touched
