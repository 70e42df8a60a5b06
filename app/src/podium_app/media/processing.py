"""Image processing that hostile input cannot break.

Every refusal raises MediaRefused with a message for the API's 422. Order of checks:
size (empty, too large) -> magic bytes (what the file really is) -> the declared content
type must agree -> header-only dimensions against the pixel cap (before any pixel is
decoded, so a decompression bomb costs nothing) -> full decode (truncated or corrupt files
fail here) -> re-encode from pixels only. Re-encoding is what strips EXIF/GPS, comments,
ICC/XMP and anything appended to the file (polyglots): only pixels survive.

Animated GIF and WebP keep their first frame only (Mastodon turns them into video; not done).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import blurhash
from PIL import Image, ImageFile, ImageOps

# Never decode past the end of a file: a truncated upload is refused, not padded.
ImageFile.LOAD_TRUNCATED_IMAGES = False

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
# Declared types that say nothing about the bytes (some clients send them).
UNDECLARED = {"", "application/octet-stream"}
PREVIEW_BOX = (640, 640)


class MediaRefused(ValueError):
    """The upload is refused; str(self) is the message for the client (English).

    `reason` is the message before its `%(name)s` values are filled in and `values` those
    values, so a page can show the reason in its own language (the web compose form
    translates every reason through its gettext catalogues).
    """

    def __init__(self, reason: str, **values: object):
        self.reason = reason
        self.values = values
        super().__init__(reason % values if values else reason)


@dataclass(frozen=True)
class Rendition:
    data: bytes
    content_type: str
    ext: str
    width: int
    height: int


@dataclass(frozen=True)
class ProcessedImage:
    original: Rendition
    preview: Rendition
    blurhash: str


def sniff(data: bytes) -> str | None:
    """The Pillow format name the magic bytes announce, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _encode(im: Image.Image) -> Rendition:
    out = io.BytesIO()
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        im.save(out, "PNG", optimize=True)
        return Rendition(out.getvalue(), "image/png", "png", im.width, im.height)
    im = im.convert("RGB")
    im.save(out, "JPEG", quality=85, optimize=True, progressive=True)
    return Rendition(out.getvalue(), "image/jpeg", "jpg", im.width, im.height)


def _blurhash(im: Image.Image) -> str:
    small = im.convert("RGB")
    small.thumbnail((32, 32))
    # get_flattened_data replaces getdata (deprecated) from Pillow 12.1.
    pixels = list(getattr(small, "get_flattened_data", small.getdata)())
    rows = [pixels[y * small.width:(y + 1) * small.width] for y in range(small.height)]
    return blurhash.encode(rows, components_x=4, components_y=3)


def process_image(data: bytes, declared_type: str | None, *, max_bytes: int,
                  max_pixels: int, output_pixels: int) -> ProcessedImage:
    if not data:
        raise MediaRefused("the file is empty")
    if len(data) > max_bytes:
        raise MediaRefused("the file is larger than %(mb)s MB", mb=max_bytes // 1_000_000)
    fmt = sniff(data)
    if fmt is None:
        raise MediaRefused("unsupported file type (JPEG, PNG, WebP or GIF images only)")
    declared = ALIASES.get((declared_type or "").lower(), (declared_type or "").lower())
    if declared not in UNDECLARED and declared != FORMATS[fmt]:
        raise MediaRefused("the content type %(declared)s does not match the file, "
                           "which is %(actual)s", declared=declared_type, actual=FORMATS[fmt])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # formats=[fmt]: Pillow may not try any other decoder on these bytes.
            im = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = im.size
            if width < 1 or height < 1 or width * height > max_pixels:
                raise MediaRefused("the image is %(width)sx%(height)s pixels, more "
                                   "than the %(allowed)s allowed", width=width,
                                   height=height, allowed=max_pixels)
            im.seek(0)
            if fmt == "JPEG" and width * height > 2 * output_pixels:
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the cap): far
                # less work and memory than decoding everything and then shrinking.
                scale = (output_pixels / (width * height)) ** 0.5
                im.draft("RGB", (int(width * scale) + 1, int(height * scale) + 1))
            im.load()
            im = ImageOps.exif_transpose(im)
    except MediaRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise MediaRefused("the image has too many pixels (a decompression bomb)") from err
    except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as err:
        # Truncated data, corrupt chunks, bad headers: Pillow's ways of saying so.
        raise MediaRefused("the file is truncated or corrupt") from err
    except MemoryError as err:
        raise MediaRefused("the image needs too much memory to decode") from err
    original = im.copy()
    if original.width * original.height > output_pixels:
        scale = (output_pixels / (original.width * original.height)) ** 0.5
        original = original.resize((max(1, int(original.width * scale)),
                                    max(1, int(original.height * scale))),
                                   Image.Resampling.LANCZOS)
    preview = original.copy()
    preview.thumbnail(PREVIEW_BOX, Image.Resampling.LANCZOS)
    return ProcessedImage(original=_encode(original), preview=_encode(preview),
                          blurhash=_blurhash(preview))
