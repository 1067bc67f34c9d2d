"""Image bytes from visitors and agents: the type from the magic bytes, the dimensions from the
header, and the metadata removed, in pure Python (no Pillow: the message function must stay
small, docs/design-notes.md "Images").

Accepted: JPEG, PNG, WebP. What is kept is what draws the picture (and its colour profile);
what is dropped is what can say who, where and with what took it:

- JPEG: APP1 (EXIF with GPS, XMP), APP3-APP13, APP15 and comments go; APP0 (JFIF), APP2 ICC
  profiles and APP14 (Adobe colour transform) stay; nothing after the end-of-image marker stays
  (a file appended to a picture goes with it).
- PNG: the text chunks (tEXt, zTXt, iTXt), eXIf, tIME and any chunk not needed to draw go; the
  file ends at IEND.
- WebP: the EXIF and XMP chunks go and the VP8X header stops announcing them.

The image is not decoded: a file whose header lies about its pixels is the browser's to refuse,
and its size is bounded by the upload limit anyway. Dimensions beyond ``max_side`` are refused,
so no client is handed a picture that takes gigabytes to draw.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ALLOWED_TYPES", "ImageFacts", "ImageRejected", "sniff_type", "strip_metadata"]

ALLOWED_TYPES = ("image/jpeg", "image/png", "image/webp")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that draw the picture (and APNG's frames); everything else is dropped.
_PNG_KEEP = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB",
                       b"iCCP", b"sBIT", b"bKGD", b"pHYs", b"acTL", b"fcTL", b"fdAT"})
_WEBP_KEEP = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04
# JPEG start-of-frame markers (the ones that carry the dimensions).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


class ImageRejected(ValueError):
    """Not an image we accept; ``reason`` is a fixed word: ``format``, ``corrupt``,
    ``dimensions``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageFacts:
    content_type: str
    width: int
    height: int


def sniff_type(data: bytes) -> str | None:
    """The type the magic bytes say (one of ``ALLOWED_TYPES``), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(_PNG_SIGNATURE):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def strip_metadata(data: bytes, *, max_side: int = 4096) -> tuple[bytes, ImageFacts]:
    """The image without its metadata, and what it is. Raises :class:`ImageRejected`."""
    kind = sniff_type(data)
    if kind is None:
        raise ImageRejected("format")
    try:
        if kind == "image/jpeg":
            cleaned, width, height = _jpeg(data)
        elif kind == "image/png":
            cleaned, width, height = _png(data)
        else:
            cleaned, width, height = _webp(data)
    except (IndexError, struct.error) as exc:
        raise ImageRejected("corrupt") from exc
    if not (0 < width <= max_side and 0 < height <= max_side):
        raise ImageRejected("dimensions")
    return cleaned, ImageFacts(kind, width, height)


def _jpeg(data: bytes) -> tuple[bytes, int, int]:
    out = bytearray(b"\xff\xd8")
    pos, size = 2, None
    while True:
        if data[pos] != 0xFF:
            raise ImageRejected("corrupt")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image without a scan
            raise ImageRejected("corrupt")
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += data[pos:pos + 2]
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise ImageRejected("corrupt")
        segment = data[pos:pos + 2 + length]
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            size = (width, height)
        if marker == 0xDA:  # start of scan: the rest is image data up to the last EOI
            end = data.rfind(b"\xff\xd9")
            if size is None or end < pos:
                raise ImageRejected("corrupt")
            out += data[pos:end + 2]
            return bytes(out), size[0], size[1]
        if _keep_jpeg_segment(marker, segment[4:]):
            out += segment
        pos += 2 + length


def _keep_jpeg_segment(marker: int, body: bytes) -> bool:
    if marker == 0xFE or marker in (0xE1, *range(0xE3, 0xEE), 0xEF):
        return False  # comments, EXIF/XMP and the other application segments
    if marker == 0xE2:
        return body.startswith(b"ICC_PROFILE\x00")
    return True  # tables, frame headers, JFIF (APP0), Adobe (APP14)


def _png(data: bytes) -> tuple[bytes, int, int]:
    out = bytearray(_PNG_SIGNATURE)
    pos = len(_PNG_SIGNATURE)
    width = height = 0
    first = True
    while True:
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ImageRejected("corrupt")
        if first:
            if kind != b"IHDR":
                raise ImageRejected("corrupt")
            width, height = struct.unpack(">II", data[pos + 8:pos + 16])
            first = False
        if kind in _PNG_KEEP:
            out += data[pos:end]
        if kind == b"IEND":
            return bytes(out), width, height
        pos = end


def _webp(data: bytes) -> tuple[bytes, int, int]:
    (riff_size,) = struct.unpack("<I", data[4:8])
    stop = min(len(data), 8 + riff_size)
    chunks = bytearray()
    pos = 12
    width = height = 0
    while pos + 8 <= stop:
        kind = data[pos:pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4:pos + 8])
        end = pos + 8 + length + (length & 1)
        if pos + 8 + length > stop:
            raise ImageRejected("corrupt")
        chunk = bytearray(data[pos:min(end, stop)])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"VP8X":
            chunk[8] &= ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF
            width = 1 + int.from_bytes(body[4:7], "little")
            height = 1 + int.from_bytes(body[7:10], "little")
        elif kind == b"VP8 " and not width:
            if body[3:6] != b"\x9d\x01\x2a":
                raise ImageRejected("corrupt")
            w, h = struct.unpack("<HH", body[6:10])
            width, height = w & 0x3FFF, h & 0x3FFF
        elif kind == b"VP8L" and not width:
            if body[0] != 0x2F:
                raise ImageRejected("corrupt")
            bits = int.from_bytes(body[1:5], "little")
            width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind in _WEBP_KEEP:
            chunks += chunk
        pos = end
    if not width:
        raise ImageRejected("corrupt")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + bytes(chunks), width, height
