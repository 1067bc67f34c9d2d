"""Images are recognised by their magic bytes and kept without their metadata."""

from __future__ import annotations

import pytest

from kefu_core.security.image_files import ImageRejected, sniff_type, strip_metadata
from tests.support.images import (
    AUTHOR,
    GPS_MARK,
    decoded,
    jpeg_with_exif,
    png_with_text,
    webp_with_exif,
)


def test_a_jpeg_loses_exif_gps_comment_and_anything_appended() -> None:
    # GIVEN a camera-like JPEG: EXIF with GPS and the author, a comment, a zip file appended
    original = jpeg_with_exif(64, 48, trailer=b"PK\x03\x04secret.txt")
    assert GPS_MARK in original and AUTHOR.encode() in original
    # WHEN it is stripped
    clean, facts = strip_metadata(original)
    # THEN it is still the same picture, and none of that is left
    assert (facts.content_type, facts.width, facts.height) == ("image/jpeg", 64, 48)
    image = decoded(clean)
    assert image.size == (64, 48) and image.getpixel((0, 24)) == decoded(original).getpixel((0, 24))
    assert not image.getexif()
    for leaked in (GPS_MARK, AUTHOR.encode(), b"Exif", b"PK\x03\x04"):
        assert leaked not in clean
    assert clean.endswith(b"\xff\xd9")


def test_a_png_loses_its_text_and_exif_chunks() -> None:
    # GIVEN a PNG with tEXt, a compressed iTXt and an eXIf chunk
    original = png_with_text(40, 30)
    assert b"tEXt" in original and b"eXIf" in original
    # WHEN it is stripped
    clean, facts = strip_metadata(original)
    # THEN it draws the same and carries none of them
    assert (facts.content_type, facts.width, facts.height) == ("image/png", 40, 30)
    assert decoded(clean).tobytes() == decoded(original).tobytes()
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf", AUTHOR.encode()):
        assert chunk not in clean


def test_a_webp_loses_its_exif_chunk_and_the_header_flag() -> None:
    # GIVEN a WebP with EXIF (an extended VP8X file)
    original = webp_with_exif(32, 20)
    assert b"EXIF" in original and GPS_MARK in original
    # WHEN it is stripped
    clean, facts = strip_metadata(original)
    # THEN it decodes at its size, without the chunk, and VP8X no longer announces one
    assert (facts.content_type, facts.width, facts.height) == ("image/webp", 32, 20)
    assert decoded(clean).size == (32, 20)
    assert b"EXIF" not in clean and GPS_MARK not in clean
    vp8x = clean.index(b"VP8X")
    assert clean[vp8x + 8] & 0x08 == 0


@pytest.mark.parametrize("data", [
    b"GIF89a\x01\x00\x01\x00",
    b"<html><script>alert(1)</script></html>",
    b"%PDF-1.7",
    b"",
])
def test_anything_else_is_refused_by_its_magic_bytes(data: bytes) -> None:
    # GIVEN bytes that are no JPEG, PNG or WebP WHEN checked THEN the type is refused
    assert sniff_type(data) is None
    with pytest.raises(ImageRejected) as refused:
        strip_metadata(data)
    assert refused.value.reason == "format"


def test_a_cut_file_is_corrupt_and_a_huge_one_refused_by_its_dimensions() -> None:
    # GIVEN a JPEG cut after its header, and real images over the allowed side
    cut = jpeg_with_exif()[:300]
    # WHEN checked THEN the first cannot be read and the others are too large in pixels
    with pytest.raises(ImageRejected) as corrupt:
        strip_metadata(cut)
    assert corrupt.value.reason == "corrupt"
    for big in (jpeg_with_exif(300, 20), png_with_text(20, 300)):
        with pytest.raises(ImageRejected) as huge:
            strip_metadata(big, max_side=256)
        assert huge.value.reason == "dimensions"
