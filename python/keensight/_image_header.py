"""The size an image file declares, read from its header before anything is decoded.

A decoder allocates its output from the header alone: a 400 KB PNG whose IHDR says
20000 x 20000 costs 1.2 GB before a single row is inflated (a "decompression bomb").
:func:`read_header` parses the headers of the formats keensight decodes (JPEG, PNG, BMP,
WebP, TIFF) exactly as far as their decoders do to size that allocation, so the caller
can refuse an image above a pixel limit first. Formats it does not know are refused
too: a decoder whose header cannot be checked is not run.

Header layouts: JPEG, ITU-T T.81 Annex B (markers, frame header B.2.2); PNG, RFC 2083
section 4.1.1 (IHDR); BMP, the Windows BITMAPINFOHEADER / OS/2 BITMAPCOREHEADER; WebP,
RFC 9649 (RIFF container, VP8 / VP8L / VP8X chunks); TIFF 6.0 section 2 (image file
directory) and the BigTIFF extension.
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Optional

__all__ = ["ImageHeader", "read_header", "FORMATS"]

FORMATS = ("JPEG", "PNG", "BMP", "WebP", "TIFF")


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What a file declares.

    Attributes
    ----------
    format : str
        One of :data:`FORMATS`.
    height, width : int
        Declared image size in pixels.
    buffer_pixels : int
        Pixels of the largest buffer the decoder allocates from the header: the image,
        or a TIFF tile or strip if that is larger (OpenCV sizes its TIFF read buffer by
        the declared tile, up to 1 GB, whatever the image size).
    """

    format: str
    height: int
    width: int
    buffer_pixels: int

    def describe(self) -> str:
        size = f"{self.width}x{self.height}"
        if self.buffer_pixels > self.width * self.height:
            return f"{size} with a {self.buffer_pixels:,}-pixel tile"
        return size


def read_header(data: bytes) -> ImageHeader:
    """The declared size of an encoded image (the whole file's bytes).

    Raises
    ------
    ValueError
        Not one of :data:`FORMATS`, or a header too damaged to give a size.
    """
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png(data)
    if data[:2] == b"BM":
        return _bmp(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return _tiff(data)
    raise ValueError(f"unsupported image format (keensight decodes {', '.join(FORMATS[:-1])} and {FORMATS[-1]} files)")


def _header(fmt: str, height: int, width: int, buffer_pixels: Optional[int] = None) -> ImageHeader:
    if height <= 0 or width <= 0:
        raise ValueError(f"corrupt {fmt} header: declares an empty {width}x{height} image")
    return ImageHeader(fmt, height, width, max(height * width, buffer_pixels or 0))


def _jpeg(data: bytes) -> ImageHeader:
    # Walk the marker segments the way libjpeg's next_marker() does: bytes before a 0xFF
    # are skipped (it warns and goes on), 0xFF fill bytes are skipped, and every marker
    # but SOI, EOI, TEM and RSTn carries a 2-byte big-endian length. The first SOFn frame
    # header holds the size; libjpeg refuses a second one.
    i, n = 2, len(data)
    while True:
        i = data.find(b"\xff", i)
        if i < 0:
            break
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker in (0x00, 0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # stuffed byte, TEM, SOI, RSTn
            continue
        if marker == 0xD9 or i + 2 > n:  # EOI
            break
        length = (data[i] << 8) | data[i + 1]
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 7 > n:
                break
            height, width = struct.unpack_from(">HH", data, i + 3)
            return _header("JPEG", height, width)
        if marker == 0xDA:  # a scan before any frame header
            break
        i += length
    raise ValueError("corrupt JPEG header: no frame header (SOF) giving the image size")


def _png(data: bytes) -> ImageHeader:
    # The IHDR chunk must come first: 4-byte length, b"IHDR", width, height (big-endian).
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ValueError("corrupt PNG header: the first chunk is not IHDR")
    width, height = struct.unpack_from(">II", data, 16)
    return _header("PNG", height, width)


def _bmp(data: bytes) -> ImageHeader:
    # BITMAPFILEHEADER (14 bytes), then the DIB header whose first field is its size:
    # 12 (OS/2 core header: 16-bit sizes) or >= 40 (32-bit sizes; a negative height
    # means top-down rows).
    if len(data) < 26:
        raise ValueError("corrupt BMP header: too short")
    (dib,) = struct.unpack_from("<I", data, 14)
    if dib == 12:
        width, height = struct.unpack_from("<HH", data, 18)
    elif dib >= 40:
        width, height = struct.unpack_from("<ii", data, 18)
        height = abs(height)
    else:
        raise ValueError(f"corrupt BMP header: unknown DIB header size {dib}")
    return _header("BMP", height, width)


def _webp(data: bytes) -> ImageHeader:
    # RIFF "WEBP", then the first chunk (4-byte tag, 4-byte size, payload at 20).
    tag = data[12:16]
    if tag == b"VP8X" and len(data) >= 30:
        # Extended format: the canvas size (24-bit, minus one) is what the decoder allocates,
        # whatever the frames inside say.
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return _header("WebP", height, width)
    if tag == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        # Lossy key frame: 3-byte frame tag, start code, 14-bit width and height.
        width, height = struct.unpack_from("<HH", data, 26)
        return _header("WebP", height & 0x3FFF, width & 0x3FFF)
    if tag == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        # Lossless: signature, then 14-bit width - 1 and height - 1.
        (bits,) = struct.unpack_from("<I", data, 21)
        return _header("WebP", ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1)
    raise ValueError("corrupt WebP header: no VP8, VP8L or VP8X chunk first")


# TIFF field types that hold the integers read here: SHORT, LONG, LONG8 (BigTIFF).
_TIFF_INT_TYPES = {3: "H", 4: "I", 16: "Q"}
_TIFF_TAGS = {256: "width", 257: "height", 278: "rows_per_strip", 322: "tile_width", 323: "tile_height"}


def _tiff(data: bytes) -> ImageHeader:
    # Header: byte order, 42 (classic) or 43 (BigTIFF), the offset of the first image
    # file directory (IFD), whose entries are (tag, type, count, value-or-offset). The
    # first directory is the image OpenCV decodes.
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\0", b"\0+")
    try:
        if big:
            (offset,) = struct.unpack_from(order + "Q", data, 8)
            count_fmt, entry_fmt, entry_size = "Q", "HHQ", 20
        else:
            (offset,) = struct.unpack_from(order + "I", data, 4)
            count_fmt, entry_fmt, entry_size = "H", "HHI", 12
        (count,) = struct.unpack_from(order + count_fmt, data, offset)
        first = offset + struct.calcsize(order + count_fmt)
        fields = {}
        for k in range(count):
            at = first + k * entry_size
            tag, kind, n = struct.unpack_from(order + entry_fmt, data, at)
            if tag in _TIFF_TAGS and kind in _TIFF_INT_TYPES and n >= 1:
                value_at = at + struct.calcsize(order + entry_fmt)  # values that fit sit in the entry
                (fields[_TIFF_TAGS[tag]],) = struct.unpack_from(order + _TIFF_INT_TYPES[kind], data, value_at)
    except struct.error:
        raise ValueError("corrupt TIFF header: the first image directory lies outside the file") from None
    if "width" not in fields or "height" not in fields:
        raise ValueError("corrupt TIFF header: no ImageWidth / ImageLength")
    width, height = fields["width"], fields["height"]
    if "tile_width" in fields or "tile_height" in fields:
        tile = fields.get("tile_width", width) * fields.get("tile_height", height)
    else:
        rows = fields.get("rows_per_strip", height)
        # 0 and 2**32 - 1 (or more, in BigTIFF) mean "one strip"; libtiff reads the field as 32 bits.
        tile = width * (height if rows == 0 or rows >= 2 ** 32 - 1 else rows)
    return _header("TIFF", height, width, tile)

