"""Where a hit was: its frame's position in the camera's stream and the face's box in that frame.

A file camera's frames carry their index in the file (from 0, again from 0 when a looping file starts
over), and a hit's audit record (alert and sighting) names that frame and the box, so a recording
can be searched for it (and `make bench` places each hit on the scene's ground truth exactly,
whether the box kept up with the stream or dropped frames).
"""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
from test_encounters import Box, records

from edge.alerts import messages
from edge.pipeline.capture import Capture


def test_a_file_cameras_frames_carry_their_index_in_the_file_across_loops(tmp_path):
    path = tmp_path / "clip.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (160, 120))
    for i in range(10):
        out.write(np.full((120, 160, 3), 20 * i, np.uint8))
    out.release()
    cap = Capture(str(path), loop=True, realtime=False)
    cap._publish = lambda image, pos: got.append((pos, round(image.mean() / 20)))  # every frame, none dropped
    got: list[tuple[int, int]] = []
    cap.start()
    deadline = time.monotonic() + 20
    while len(got) < 25 and time.monotonic() < deadline:
        time.sleep(0.01)
    cap.stop()
    assert [p for p, _ in got[:25]] == [*range(10), *range(10), *range(5)]
    assert all(p == shade for p, shade in got[:25])  # the position is the frame's own index


def test_a_hits_audit_records_name_its_frame_and_box(tmp_path):
    box = Box(tmp_path)
    try:
        for track, frame_no in (("cam-a-1-1", 812), ("cam-b-1-7", 20)):
            raw = json.dumps(messages.stage(
                "encoding", camera_id=track[:5], track_id=track, frame_time=time.time(), quality=1.0,
                frame_no=frame_no, box=[300, 460, 345, 415],
                descriptor=(box.templates[0] + 0.004).tolist(), crop_jpeg=messages.b64(b"\xff\xd8crop")))
            box.daemon.on_encodings([messages.loads(raw, allowed={"encoding"})])
        alert, sighting = records(box, "alert")[0], records(box, "sighting")[0]
        assert (alert["frame_no"], alert["box"]) == (812, [300, 460, 345, 415])
        assert (sighting["frame_no"], sighting["box"], sighting["camera_id"]) == (20, [300, 460, 345, 415], "cam-b")
    finally:
        box.stop()
