"""Image processing cost per megapixel (the app's media/processing.py, in process).

Run: .venv/bin/python -m kit.bench_media   (no services needed; a few seconds)
Photos are synthetic (gradients plus noise, JPEG q92, with an EXIF orientation), which is
harder to compress than most real photos: figures are on the pessimistic side.
"""

from __future__ import annotations

import io
import os
import statistics
import time

from PIL import Image
from podium_app.media.processing import process_image

SIZES = [(1600, 1200), (3264, 2448), (4000, 3000), (6000, 4000)]


def photo(width: int, height: int) -> bytes:
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.frombytes("L", (width, height), os.urandom(width * height)).convert("RGB")
    im = Image.blend(base, noise, 0.25)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    im.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def video_speed(seconds: int = 10) -> None:
    """Transcode speed relative to real time: a 1080p30 test clip with audio, made by
    ffmpeg (MPEG-4 part 2 at high quality, so the transcode really re-encodes)."""
    import subprocess
    import tempfile
    from pathlib import Path

    from podium_app.media.video import transcode

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "clip.mov"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                        f"testsrc2=size=1920x1080:rate=30:duration={seconds}", "-f", "lavfi",
                        "-i", f"sine=duration={seconds}", "-c:v", "mpeg4", "-q:v", "3",
                        str(src)], check=True)
        start = time.perf_counter()
        transcode(src.read_bytes())
        took = time.perf_counter() - start
    print(f"video: {seconds} s of 1920x1080p30 + audio transcoded in {took:.1f} s "
          f"= {seconds / took:.2f}x real time")


def main(runs: int = 3) -> None:
    print(f"{'size':>11} {'MP':>5} {'file MB':>8} {'median s':>9} {'s/MP':>6}")
    for width, height in SIZES:
        data = photo(width, height)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            process_image(data, "image/jpeg", max_bytes=64_000_000, max_pixels=40_000_000,
                          output_pixels=8_294_400)
            times.append(time.perf_counter() - start)
        mp = width * height / 1e6
        median = statistics.median(times)
        print(f"{width:>5}x{height:<5} {mp:5.1f} {len(data) / 1e6:8.1f} {median:9.3f} "
              f"{median / mp:6.3f}")


if __name__ == "__main__":
    main()
    video_speed()
