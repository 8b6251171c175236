"""Make demo/media/camera_b.mp4: a slideshow of still portraits, to stand in for a second camera.

Run once by hand (the output is committed): python -m demo.make_media
It shows, 2.5 s each, four people who are NOT on the demo watch list and one who is
(Alex Lacamoire, a different photo from the one on the list), so camera B alerts exactly once per loop.
"""

from pathlib import Path

import cv2
import numpy as np

FACES = Path(__file__).resolve().parent.parent / "tests" / "data" / "media" / "faces"
STILLS = ["obama.jpg", "kit_harington_john1.jpeg", "alex_lacamoire1.jpg", "biden.jpg", "rose_leslie_img1.jpg"]
W, H, FPS, SECONDS = 640, 360, 15, 2.5


def frame_for(img: np.ndarray, t: float) -> np.ndarray:
    scale = min(W / img.shape[1], H / img.shape[0]) * (0.9 + 0.1 * t)  # a slow zoom, like a walk-in
    small = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.full((H, W, 3), 40, np.uint8)
    y, x = max(0, (H - small.shape[0]) // 2), max(0, (W - small.shape[1]) // 2)
    crop = small[: H, : W]
    canvas[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
    return canvas


OUT = Path(__file__).resolve().parent / "media" / "camera_b.mp4"


def main(out: Path = OUT) -> None:
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    for name in STILLS:
        img = cv2.imread(str(FACES / name))
        n = int(FPS * SECONDS)
        for i in range(n):
            writer.write(frame_for(img, i / n))
        for _ in range(FPS // 2):  # a short empty gap between people ends the track
            writer.write(np.full((H, W, 3), 40, np.uint8))
    writer.release()
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
