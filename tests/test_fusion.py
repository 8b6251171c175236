"""A track's views are matched as one: the mean of its encodes (memory only, bounded, forgotten)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.pipeline.fusion import TrackFusion
from edge.watchlist import operating
from edge.watchlist.base import Entry, Matcher, WatchList

DATA = Path(__file__).parent / "data" / "eval" / "lfw-dev-descriptors.npz"


def test_views_of_a_track_are_fused_and_tracks_kept_apart():
    f = TrackFusion(memory_s=10.0, max_tracks=2)
    a, b = np.full(128, 0.1, np.float32), np.full(128, 0.3, np.float32)
    assert np.allclose(f.add("t1", a, 0.0), a)
    assert np.allclose(f.add("t1", b, 1.0), (a + b) / 2) and f.views("t1") == 2
    assert np.allclose(f.add("t2", b, 1.0), b)  # another track is its own
    f.add("t3", a, 2.0)  # over max_tracks: the oldest is forgotten
    assert f.views("t1") == 0 and f.views("t2") == 1
    assert np.allclose(f.add("t2", a, 20.0), a)  # after memory_s a track starts afresh
    f.clear()
    assert f.views("t2") == 0


def test_fused_views_find_more_listed_people_at_the_same_operating_point():
    """lfw-dev people with 3+ photos: one photo is on a list of 300; the other two are two views."""
    z = np.load(DATA)
    desc, labels = z["descriptors"].astype(np.float32), z["labels"]
    ids, counts = np.unique(labels, return_counts=True)
    people = ids[counts >= 3]
    rows = [np.flatnonzero(labels == i) for i in people]
    others = [np.flatnonzero(labels == i)[0] for i in ids[counts == 1][: 300 - len(people)]]
    gallery = np.array([r[0] for r in rows] + others)
    wl = WatchList("l", [Entry(ref=str(i)) for i in range(len(gallery))], desc[gallery], np.arange(len(gallery)))
    wl.operating = operating.derive(operating.load_calibration(), len(wl), 0.001, 0.6)
    m = Matcher(0.6)
    m.swap(wl)
    single = fused = 0
    for k, r in enumerate(rows):
        f = TrackFusion()
        hits = [m.match(f.add("t", desc[row], 0.0)) for row in r[1:3]]
        single += m.match(desc[r[1]]) is not None and m.match(desc[r[1]])[0].ref == str(k)
        fused += hits[-1] is not None and hits[-1][0].ref == str(k)
    assert fused > single, (fused, single, len(rows))
