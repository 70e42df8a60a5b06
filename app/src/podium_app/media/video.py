"""Video: probe with ffprobe at upload (refuse early), transcode in the worker.

The upload is checked with ffprobe (container MP4/MOV or WebM/Matroska, a video stream,
duration, dimensions, size), stored as-is under a content-addressed ``.src`` name, and a
queue job turns it into H.264/AAC MP4 with ``+faststart`` plus a JPEG poster; the source is
deleted afterwards. ffprobe/ffmpeg run as subprocesses with a timeout, on files in a private
temporary folder; nothing of the input reaches a shell.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from podium_app.media.processing import MediaRefused

# ffprobe format names (comma lists) of the containers we take.
CONTAINERS = {"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm"}
DECLARED = {"video/mp4", "video/quicktime", "video/webm", "application/octet-stream", ""}


@dataclass(frozen=True)
class Probe:
    duration: float
    width: int
    height: int
    has_audio: bool


def looks_like_video(data: bytes) -> bool:
    return data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3"


def probe(data: bytes, declared_type: str | None, *, max_bytes: int, max_seconds: float,
          max_pixels: int) -> Probe:
    if not data:
        raise MediaRefused("the file is empty")
    if len(data) > max_bytes:
        raise MediaRefused("the file is larger than %(mb)s MB", mb=max_bytes // 1_000_000)
    if (declared_type or "").lower() not in DECLARED:
        raise MediaRefused("the content type %(declared)s is not MP4, MOV or WebM video",
                           declared=declared_type)
    if not looks_like_video(data):
        raise MediaRefused("the file is not MP4, MOV or WebM video")
    with tempfile.TemporaryDirectory(prefix="podium-probe-") as tmp:
        path = Path(tmp) / "in"
        path.write_bytes(data)
        try:
            done = subprocess.run(
                ["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                 "-show_streams", str(path)], capture_output=True, timeout=30, check=False)
        except subprocess.TimeoutExpired as err:
            raise MediaRefused("the video could not be read in time") from err
    if done.returncode != 0:
        raise MediaRefused("the video is truncated or corrupt")
    info = json.loads(done.stdout or b"{}")
    names = set(info.get("format", {}).get("format_name", "").split(","))
    if not names & CONTAINERS:
        raise MediaRefused("the file is not MP4, MOV or WebM video")
    streams = info.get("streams", [])
    video = [s for s in streams if s.get("codec_type") == "video"
             and not s.get("disposition", {}).get("attached_pic")]
    if not video:
        raise MediaRefused("the file has no video stream")
    width, height = int(video[0].get("width") or 0), int(video[0].get("height") or 0)
    if width < 1 or height < 1 or width * height > max_pixels:
        raise MediaRefused("the video is %(width)sx%(height)s pixels, more than allowed",
                           width=width, height=height)
    try:
        duration = float(info.get("format", {}).get("duration") or video[0].get("duration"))
    except (TypeError, ValueError) as err:
        raise MediaRefused("the video has no duration") from err
    if duration > max_seconds:
        raise MediaRefused("the video is longer than %(seconds)s seconds",
                           seconds=int(max_seconds))
    return Probe(duration, width, height,
                 any(s.get("codec_type") == "audio" for s in streams))


def transcode(source: bytes, *, max_side: int = 1920,
              timeout: float = 600) -> tuple[bytes, bytes]:
    """(H.264/AAC MP4 with faststart, JPEG poster). Raises RuntimeError on failure."""
    with tempfile.TemporaryDirectory(prefix="podium-video-") as tmp:
        src, out, poster = Path(tmp) / "in", Path(tmp) / "out.mp4", Path(tmp) / "poster.jpg"
        src.write_bytes(source)
        # Even dimensions (H.264 4:2:0), longest side at most max_side, never upscaled.
        scale = (f"scale='min({max_side},iw)':'min({max_side},ih)':"
                 "force_original_aspect_ratio=decrease:force_divisible_by=2")
        steps = [
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-map", "0:v:0",
             "-map", "0:a:0?", "-map_metadata", "-1", "-vf", scale, "-c:v", "libx264",
             "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-c:a", "aac",
             "-b:a", "128k", "-movflags", "+faststart", str(out)],
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(out), "-frames:v", "1",
             "-q:v", "3", str(poster)],
        ]
        for command in steps:
            try:
                done = subprocess.run(command, capture_output=True, timeout=timeout,
                                      check=False)
            except subprocess.TimeoutExpired as err:
                raise RuntimeError("ffmpeg timed out") from err
            if done.returncode != 0:
                raise RuntimeError(f"ffmpeg failed: {done.stderr.decode(errors='replace')[-300:]}")
        return out.read_bytes(), poster.read_bytes()
