"""Real images for tests, made with Pillow: a JPEG carrying EXIF with GPS and a comment, a PNG
with text chunks, a WebP with EXIF."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, PngImagePlugin

GPS_MARK = b"GPSsecret-52.5200N"
AUTHOR = "Zhang San, +86 138 1234 5678"


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "KefuCam"  # Make
    exif[0x013B] = AUTHOR  # Artist
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS IFD
    exif[0x010E] = GPS_MARK.decode()  # ImageDescription: a marker the test looks for
    return exif


def picture(width: int = 64, height: int = 48) -> Image.Image:
    """A small scene: a sky fading to the horizon, a sun, a green field and a red box."""
    sky = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (sky.point(lambda v: 90 + v // 3), sky.point(lambda v: 150 + v // 4),
                                Image.new("L", (width, height), 235)))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, height * 2 // 3, width, height), fill=(70, 160, 80))
    r = max(2, min(width, height) // 8)
    draw.ellipse((width * 3 // 4 - r, height // 5 - r, width * 3 // 4 + r, height // 5 + r),
                 fill=(250, 200, 40))
    draw.rectangle((width // 5, height // 2, width // 5 + width // 4, height * 5 // 6),
                   fill=(200, 40, 40))
    return image


def jpeg_with_exif(width: int = 64, height: int = 48, *, trailer: bytes = b"") -> bytes:
    out = io.BytesIO()
    picture(width, height).save(out, "JPEG", exif=_exif(), comment=AUTHOR.encode(), quality=90)
    return out.getvalue() + trailer


def png_with_text(width: int = 40, height: int = 30) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", AUTHOR)
    info.add_itxt("Comment", GPS_MARK.decode(), zip=True)
    out = io.BytesIO()
    picture(width, height).save(out, "PNG", pnginfo=info, exif=_exif())
    return out.getvalue()


def webp_with_exif(width: int = 32, height: int = 20) -> bytes:
    out = io.BytesIO()
    picture(width, height).save(out, "WEBP", exif=_exif(), quality=80)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
