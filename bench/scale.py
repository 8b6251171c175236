"""Large watch lists: match time per probe, memory held, bundle load time. One core, one run.

Both face models side by side (edge/face/model.py): templates are synthetic unit-norm vectors of each
model's length, 128-d for dlib-resnet (its descriptors are close to unit norm) and 192-d for
yunet-mobilefacenet (unit vectors), and every entry carries a reference JPEG like a real list. A
yunet-mobilefacenet bundle names its model in the header (docs/watchlist-format.md), as ``enrol build``
writes it for a box that runs that model, so the box matches its templates as they are (nothing is
re-encoded at load); a dlib bundle names none, as every list made before models were named.

Matching is exact (the nearest template, as ``WatchList.nearest`` does it): single probes through the
product's own code path, and batches of probes as one matrix product. BLAS is pinned to one thread
(threadpoolctl) so the figures are per core. Memory and bundle loading are measured in child processes,
so each starts from a clean heap.

The 100k bundle is version 2 (docs/watchlist-format.md): target load <= 5 s, peak RSS <= 1 GiB (issue 23:
for the new model's list), the daemon's steady RSS <= 400 MiB (the daemon runs the box's default model and
loads a list built for it). BENCH_SCALE_V1=1 adds the version-1 bundle for comparison (~20 s, ~5 GiB).

Run alone: python -m bench.scale   (about four minutes; BENCH_SCALE_SIZES=100000 for the 100k figures
only; BENCH_SCALE_MODELS=yunet-mobilefacenet for one model)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZES = (100_000, 1_000_000)
BATCHES = (1, 8, 32, 128)
REF_JPEG_BYTES = 6_000  # a reference image the operator compares against (a 112x112 face ~ 3-4 kB)
REF_IMAGE = Path(__file__).resolve().parent.parent / "tests" / "data" / "media" / "faces" / "lin-manuel-miranda.png"


def models() -> tuple[str, ...]:
    """The face models measured: BENCH_SCALE_MODELS (comma-separated ids), else both, dlib's first."""
    from edge.face import model as face_model

    chosen = tuple(m for m in os.environ.get("BENCH_SCALE_MODELS", "").split(",") if m)
    return chosen or (face_model.DLIB, face_model.DEFAULT)


def dim(model: str) -> int:
    from edge.face import model as face_model

    return face_model.get(model).dim


def templates(n: int, seed: int = 0, model: str = "dlib-resnet") -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.standard_normal((n, dim(model)), dtype=np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return t


def reference_jpegs(n: int) -> list[bytes]:
    """n distinct, valid JPEGs of about REF_JPEG_BYTES: a real face image plus a unique comment."""
    import cv2

    face = cv2.imread(str(REF_IMAGE))
    base = cv2.imencode(".jpg", cv2.resize(face, (112, 112)), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    pad = max(0, REF_JPEG_BYTES - len(base) - 16)
    return [b"\xff\xd8\xff\xfe" + (pad + 14).to_bytes(2, "big") + f"{i:012d}".encode() + b"\0" * pad + base[2:]
            for i in range(n)]


def watchlist(n: int, with_images: bool = True, model: str = "dlib-resnet"):
    from edge.watchlist.base import Entry, WatchList

    imgs = reference_jpegs(n) if with_images else [b""] * n
    entries = [Entry(ref=f"WL-{i:07d}", category="wanted", image_jpeg=imgs[i]) for i in range(n)]
    return WatchList("bench", entries, templates(n, model=model), np.arange(n), model=model)


def header(n: int, model: str, **fields) -> dict:
    """A version-2 list header for ``n`` entries of ``model``'s templates (``fields`` override): the model named
    as ``enrol build`` names it (absent for dlib), the threshold floor at the model's own cap."""
    from edge.face import model as face_model

    m = face_model.get(model)
    h = {"list_id": "bench", "deployment": "bench", "box_id": "bench-box", "created": "2026-01-01T00:00:00Z",
         "not_before": "2026-01-01T00:00:00Z", "not_after": "2036-01-01T00:00:00Z", "sequence": 1,
         "entries": n, "policy": {"max_entries": n, "retention_days": 31, "threshold_floor": m.cap},
         **({"model": m.ref()} if m.id != face_model.DLIB else {})}
    return {**h, **fields}


def items(n: int, model: str) -> list:
    """n version-2 entries, each with one template of ``model`` and one reference JPEG."""
    from edge.watchlist import bundle_v2

    tpl, imgs = templates(n, model=model), reference_jpegs(n)
    return [bundle_v2.Item(f"WL-{i:07d}", "wanted", "bench", tpl[i:i + 1],
                           [bundle_v2.RefImage(imgs[i], "bench", "2026-01-01")]) for i in range(n)]


def time_matching(n: int, model: str = "dlib-resnet", batches=BATCHES, budget_s: float = 2.0) -> list[dict]:
    from threadpoolctl import threadpool_limits

    wl = watchlist(n, with_images=False, model=model)
    probes = templates(max(batches), seed=1, model=model)
    probes[0] = wl.templates[123] + 0.01  # one probe that really is on the list
    rows = []
    with threadpool_limits(1):
        assert wl.nearest(probes[0])[0] == 123 and wl.nearest_batch(probes[:8])[0][0] == 123
        assert [wl.nearest(p)[0] for p in probes[:8]] == list(wl.nearest_batch(probes[:8])[0])
        for k in batches:
            fn = (lambda: wl.nearest(probes[0])) if k == 1 else (lambda k=k: wl.nearest_batch(probes[:k]))
            fn()
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < budget_s or reps < 3:
                fn()
                reps += 1
            batch_ms = (time.perf_counter() - t0) * 1000 / reps
            rows.append({"bench": "match", "model": model, "templates": n, "dtype": "float32", "batch": k,
                         "ms_per_batch": round(batch_ms, 2), "ms_per_probe": round(batch_ms / k, 3),
                         "path": "WatchList.nearest" if k == 1 else "one matrix product"})
        if n <= 100_000:  # numpy has no BLAS for float16: half the memory, many times the time
            t16, p16 = wl.templates.astype(np.float16), probes[0].astype(np.float16)
            t0 = time.perf_counter()
            int(np.argmax(t16 @ p16))
            rows.append({"bench": "match", "model": model, "templates": n, "dtype": "float16", "batch": 1,
                         "ms_per_batch": round((time.perf_counter() - t0) * 1000, 1),
                         "ms_per_probe": round((time.perf_counter() - t0) * 1000, 1), "path": "numpy float16"})
    return rows


def _child(code: str) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "child failed")
    return json.loads(r.stdout.strip().splitlines()[-1])


def memory(n: int, model: str = "dlib-resnet") -> dict:
    """RSS of a fresh process before and after it builds an n-entry list as a version-2 bundle leaves it
    in memory: templates and entries; the reference JPEGs stay in the stored bundle, read per alert."""
    out = _child(f"""
import json, psutil
from bench import scale
p = psutil.Process()
before = p.memory_info().rss
wl = scale.watchlist({n}, with_images=False, model={model!r})
print(json.dumps({{"before": before, "after": p.memory_info().rss}}))
""")
    return {"bench": "rss", "model": model, "templates": n, "rss_mib": round(out["after"] / 2**20, 1),
            "list_mib": round((out["after"] - out["before"]) / 2**20, 1),
            "note": "templates + entries; reference JPEGs stay in the stored bundle (v2)"}


def bundle_load(n: int, path: str, version: int = 2, model: str = "dlib-resnet") -> dict:
    """Write an n-entry bundle (one template and one reference JPEG per entry) for a fresh box key, then,
    in a fresh child process, load it the box's way (``reader.verify`` + ``reader.open_list``: framing,
    signature, header, every chunk authenticated, entries validated), and report the time, the peak
    RSS, the RSS held once loaded (with the daemon's imports) and the time to read one reference image
    per alert from the stored bundle. ``version=1`` measures the old single-JSON payload instead (dlib only)."""
    import gc

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from edge.identity import key_id, raw_public
    from edge.watchlist import bundle, bundle_v2

    issuer, box = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    h = header(n, model)
    t0 = time.perf_counter()
    if version == 1:
        wl = watchlist(n)
        data = bundle.write(h, bundle.encode_payload(wl.entries, list(wl.templates[:, None, :])), issuer,
                            raw_public(box))
        del wl
        with open(path, "wb") as f:
            f.write(data)
        del data
    else:
        its = items(n, model)
        with open(path, "wb") as f:
            bundle_v2.write(h, its, issuer, raw_public(box), f)
        del its
    write_s = time.perf_counter() - t0
    gc.collect()
    box_raw = box.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
    issuers = {key_id(raw_public(issuer)): raw_public(issuer).hex()}
    out = _child(f"""
import gc, json, os, time
import psutil
import edge.pipeline.daemon  # the daemon's own imports, so "held" is what the daemon would hold
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from edge.watchlist import reader
from edge.watchlist.stream import Source
key = X25519PrivateKey.from_private_bytes(bytes.fromhex({box_raw!r}))
issuers = {{k: bytes.fromhex(v) for k, v in {issuers!r}.items()}}
proc = psutil.Process()
base = proc.memory_info().rss
t0 = time.perf_counter()
c = reader.verify(Source.open({path!r}), issuers)
t1 = time.perf_counter()
assert reader.model_of(c).id == {model!r}, reader.model_of(c).id  # the model the list names: no re-encoding
wl = reader.open_list(c, key)
t2 = time.perf_counter()
gc.collect()
held = proc.memory_info().rss
reads, t3 = 0, time.perf_counter()
for row in range(0, len(wl.templates), max(1, len(wl.templates) // 1000)):
    assert wl.image(row).startswith(bytes([0xFF, 0xD8]))
    reads += 1
t4 = time.perf_counter()
# VmHWM: this process's own high-water mark (ru_maxrss would include the parent's, kept across exec)
peak = next(int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM:"))
print(json.dumps({{"verify": t1 - t0, "open": t2 - t1, "entries": len(wl), "dim": wl.dim, "base": base, "held": held,
                  "image_ms": (t4 - t3) * 1000 / reads, "peak": peak}}))
""")
    return {"bench": "bundle", "version": version, "model": model, "dim": out["dim"], "templates": n,
            "file_mib": round(os.path.getsize(path) / 2**20, 1),
            "seal_s": round(write_s, 2), "verify_s": round(out["verify"], 2), "open_s": round(out["open"], 2),
            "load_s": round(out["verify"] + out["open"], 2), "peak_rss_mib": round(out["peak"] / 2**20, 1),
            "held_rss_mib": round(out["held"] / 2**20, 1), "base_rss_mib": round(out["base"] / 2**20, 1),
            "image_ms": round(out["image_ms"], 3)}


def daemon_rss(n: int, tmp: str, seconds: float = 20.0, model: str = "") -> dict:
    """The real daemon (`edge run`, one camera playing the Hamilton clip) with an n-entry version-2 list
    loaded through `edge watchlist load`: its own process's RSS (camera processes are separate) sampled
    for ``seconds`` once the list is in force. The box runs ``model`` (empty: the default) and the list is built
    for it."""
    import signal

    import psutil
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge import identity
    from edge.face import model as face_model
    from edge.watchlist import bundle_v2

    root = Path(tmp)
    state = root / "state"
    ident = identity.create(state, "bench-box")
    issuer = Ed25519PrivateKey.generate()
    (root / "issuer.pub").write_text(json.dumps(identity.issuer_public_doc(identity.raw_public(issuer))))
    identity.add_issuer(state, root / "issuer.pub")
    model = model or face_model.DEFAULT
    now = time.time()
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    h = header(n, model, created=stamp(now), not_before=stamp(now - 60), not_after=stamp(now + 3600))
    h["policy"]["target_fpir"] = 0.5
    its = items(n, model)
    with open(root / "list.wlb", "wb") as f:
        bundle_v2.write(h, its, issuer, ident.wl_public, f)
    del its
    clip = Path(__file__).resolve().parent.parent / "tests" / "data" / "media" / "video" / "short_hamilton_clip.mp4"
    cfg = root / "edge.toml"
    cfg.write_text(f'box_id = "bench-box"\nstate_dir = "{state}"\nmodel = "{model}"\n'
                   f'[[cameras]]\nid = "cam1"\nsource = "{clip}"\nloop = true\n'
                   '[alerts]\nendpoint = "tcp://127.0.0.1:0"\n[deployment]\nrequired = false\n')
    edge = [sys.executable, "-m", "edge"]
    log = open(root / "daemon.log", "w")
    proc = subprocess.Popen([*edge, "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(120):
            if subprocess.run([*edge, "status", "--config", str(cfg), "--timeout", "1"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        before = psutil.Process(proc.pid).memory_info().rss
        t0 = time.perf_counter()
        cmd = subprocess.Popen([*edge, "watchlist", "load", str(root / "list.wlb"), "--config", str(cfg)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        anon = 0  # the daemon's anonymous memory (heap) while it loads; VmHWM also counts mapped file pages
        while cmd.poll() is None and time.perf_counter() - t0 < 300:
            anon = max(anon, _status(proc.pid)["RssAnon"])
            time.sleep(0.05)
        err = cmd.communicate(timeout=60)[1]
        load_s = time.perf_counter() - t0
        if cmd.returncode != 0:
            raise RuntimeError(f"the daemon refused the list: {err.strip()[-200:]}")
        samples = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            samples.append(psutil.Process(proc.pid).memory_info().rss)
            time.sleep(0.5)
        hwm = _status(proc.pid)["VmHWM"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return {"bench": "daemon", "model": model, "templates": n, "before_mib": round(before / 2**20, 1),
            "steady_mib": round(samples[-1] / 2**20, 1), "max_mib": round(max(samples) / 2**20, 1),
            "hwm_mib": round(hwm / 2**20, 1), "anon_mib": round(anon / 2**20, 1),
            "load_cmd_s": round(load_s, 2), "seconds": seconds}


def _status(pid: int) -> dict[str, int]:
    """A process's memory counters from /proc/<pid>/status, in bytes (VmHWM, RssAnon, RssFile, ...)."""
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f) if v.strip().endswith("kB")}


def run(sizes=SIZES, ids: tuple[str, ...] | None = None) -> list[dict]:
    import tempfile

    ids = ids or models()
    rows = []
    for n in sizes:
        for model in ids:
            rows += time_matching(n, model)
            rows.append(memory(n, model))
    loads = [(2, m) for m in ids] + ([(1, "dlib-resnet")] if os.environ.get("BENCH_SCALE_V1") else [])
    for version, model in loads:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(bundle_load(min(sizes), os.path.join(tmp, "bench.wlb"), version, model))
        except (ImportError, AttributeError, TypeError, RuntimeError) as exc:
            rows.append({"bench": "bundle", "version": version, "model": model, "templates": min(sizes),
                         "error": str(exc)})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(daemon_rss(min(sizes), tmp))
    except (OSError, RuntimeError, StopIteration) as exc:
        rows.append({"bench": "daemon", "templates": min(sizes), "error": str(exc)})
    return rows


def table(rows: list[dict]) -> str:
    out = ["| model | templates | dtype | probes per batch | ms per batch | ms per probe | how |",
           "|---|---:|---|---:|---:|---:|---|"]
    out += [f"| {r['model']} | {r['templates']:,} | {r['dtype']} | {r['batch']} | {r['ms_per_batch']} | "
            f"{r['ms_per_probe']} | {r['path']} |" for r in rows if r["bench"] == "match"]
    out += ["", "| model | templates | process RSS | of which the list | |", "|---|---:|---:|---:|---|"]
    out += [f"| {r['model']} | {r['templates']:,} | {r['rss_mib']} MiB | {r['list_mib']} MiB | {r['note']} |"
            for r in rows if r["bench"] == "rss"]
    loads = [r for r in rows if r["bench"] == "bundle"]
    out += ["", "| bundle | model | entries | file | verify (signature, header) | decrypt + validate | load total | "
                "peak RSS | RSS held (daemon imports + list) | one reference image per alert |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in loads:
        if "error" in r:
            out.append(f"| v{r['version']} | {r['model']} | {r['templates']:,} | not measured: {r['error']} "
                       "| | | | | | |")
        else:
            out.append(f"| v{r['version']} | {r['model']} ({r['dim']}-d) | {r['templates']:,} | {r['file_mib']} MiB | "
                       f"{r['verify_s']} s | {r['open_s']} s | **{r['load_s']} s** | **{r['peak_rss_mib']} MiB** | "
                       f"{r['held_rss_mib']} MiB (of which {r['base_rss_mib']} MiB before loading) | "
                       f"{r['image_ms']} ms |")
    for r in loads:
        if r["version"] == 2 and r["model"] == "yunet-mobilefacenet" and "error" not in r:
            ok = r["load_s"] <= 5.0 and r["peak_rss_mib"] <= 1024
            out += ["", f"Issue 23: a {r['templates']:,}-entry list of {r['model']} templates loads in {r['load_s']} s "
                        f"within {r['peak_rss_mib']} MiB (target <= 5 s within 1 GiB: {'met' if ok else 'NOT met'})."]
    for r in rows:
        if r["bench"] == "daemon" and "error" in r:
            out += ["", f"daemon with {r['templates']:,} entries: not measured ({r['error']})"]
        elif r["bench"] == "daemon":
            out += ["", "| daemon (`edge run`, 1 camera) | model | list | RSS before | RSS steady | max sampled | "
                        "high-water (VmHWM, with mapped file pages) | peak heap while loading (RssAnon, sampled) | "
                        "`edge watchlist load` |", "|---|---|---:|---:|---:|---:|---:|---:|---:|",
                    f"| version-2 bundle | {r['model']} | {r['templates']:,} | {r['before_mib']} MiB | "
                    f"**{r['steady_mib']} MiB** | {r['max_mib']} MiB | {r['hwm_mib']} MiB | {r['anon_mib']} MiB | "
                    f"{r['load_cmd_s']} s |"]
    return "\n".join(out)


def main() -> None:
    sizes = tuple(int(n) for n in os.environ.get("BENCH_SCALE_SIZES", "").split(",") if n) or SIZES
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Exact matching on one core (BLAS pinned to 1 thread), {os.cpu_count()}-core box "
          f"(load average {load:.1f}):\n")
    print(table(run(sizes)))


if __name__ == "__main__":
    main()
