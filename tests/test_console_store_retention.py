"""The console keeps alert crops no longer than its retention period."""

from __future__ import annotations

import time

from edge.alerts import messages
from edge.console.store import Store


def test_old_alerts_and_their_crops_are_pruned(tmp_path):
    store = Store(tmp_path / "console.db")
    for i in range(3):
        msg = messages.alert(box_id="b", camera_id="cam", track_id=f"t{i}", ref="WL-1", distance=0.4,
                             threshold=0.6, crop_jpeg=b"\xff\xd8crop")
        msg.update(outbox="o", seq=i + 1)
        store.receive("tcp://box", msg)
    assert len(store.open_alerts()) == 3
    assert store.prune(31 * 86400, now=time.time() + 30 * 86400) == 0
    assert store.prune(31 * 86400, now=time.time() + 32 * 86400) == 3
    assert store.open_alerts() == []
    store.close()
