"""Thumbnails of stored PNGs that never hold the full image decoded.

PIL decodes a PNG whole before `thumbnail` or `reduce` can shrink it: `draft`, which shrinks while decoding, only
exists for JPEG (a PNG's `draft` does nothing). A legal 9000 x 9000 image is then 324 MB decoded, on every render
of a page of cards. Here the image's zlib stream is inflated one band of rows at a time; PIL's own PNG row decoder
unfilters each band (the row above comes first, unfiltered, as the context that the Up, Average and Paeth filters
read) and the band is box-reduced at once, so memory stays at about one band, whatever the image's size.

What the store writes (8-bit, not interlaced: grey, RGB, palette, with or without alpha) goes this way; any other
PNG goes through PIL whole, as before.
"""

from __future__ import annotations

import struct
import zlib

import PIL.Image

from daam_store.store.errors import CorruptBlobError
from daam_store.store.reader import thumbnail_from_png, undecodable_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODES = {0: ("L", 1), 2: ("RGB", 3), 3: ("P", 1), 4: ("LA", 2), 6: ("RGBA", 4)}  # colour type -> mode, bytes/pixel
BAND_BYTES = 1 << 20  # inflated rows per band, about (a box of rows may need more)


def png_thumbnail(data: bytes, size: int) -> PIL.Image.Image:
    """The image shrunk to fit size x size, as RGB (as `reader.thumbnail_from_png`, with memory bounded)."""
    layout = _layout(data)
    if layout is None:  # not a PNG this reads in bands, or one PIL refuses (a bomb): PIL's way and its errors
        return thumbnail_from_png(data, size)
    width, height, mode, pixel_bytes, palette, idat = layout
    factor = max(1, max(width, height) // size)
    stride = width * pixel_bytes
    band_rows = factor * max(1, BAND_BYTES // ((stride + 1) * factor))  # whole boxes per band but the last
    reduced = PIL.Image.new("RGB", (-(-width // factor), -(-height // factor)))
    rows = _Inflater(data, idat)
    above = bytes(stride)  # the row above the first: zeros, as PNG defines it
    for top in range(0, height, band_rows):
        count = min(band_rows, height - top)
        filtered = rows.read(count * (stride + 1))
        if len(filtered) != count * (stride + 1):
            raise CorruptBlobError("stored image does not decode (its pixel data ends early); re-import the generation")
        try:
            band = PIL.Image.frombytes(
                mode, (width, count + 1), zlib.compress(b"\0" + above + filtered, 0), "zip", mode
            )
        except (OSError, ValueError) as error:
            raise undecodable_image(error) from None
        above = band.crop((0, count, width, count + 1)).tobytes()
        band = band.crop((0, 1, width, count + 1))
        if palette is not None:
            band.putpalette(palette)
        reduced.paste(band.convert("RGB").reduce(factor), (0, top // factor))
    reduced.thumbnail((size, size))
    return reduced


def _layout(data: bytes):
    """(width, height, mode, bytes per pixel, palette, IDAT spans) of a PNG read in bands here; else None."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    offset, header, palette, idat = len(PNG_SIGNATURE), None, None, []
    try:
        while offset + 12 <= len(data):
            length, kind = struct.unpack_from(">I4s", data, offset)
            start, offset = offset + 8, offset + 12 + length
            if offset > len(data):
                return None
            if kind == b"IHDR":
                header = struct.unpack_from(">IIBBBBB", data, start)
            elif kind == b"PLTE":
                palette = data[start : start + length]
            elif kind == b"IDAT":
                idat.append((start, start + length))
            elif kind == b"IEND":
                break
    except struct.error:
        return None
    if header is None or not idat:
        return None
    width, height, depth, colour, compression, filtering, interlace = header
    if depth != 8 or colour not in MODES or (compression, filtering, interlace) != (0, 0, 0) or not width or not height:
        return None
    limit = PIL.Image.MAX_IMAGE_PIXELS
    if limit and width * height > 2 * limit:  # PIL refuses it as a decompression bomb: let it say so
        return None
    if colour == 3 and palette is None:
        return None
    mode, pixel_bytes = MODES[colour]
    return width, height, mode, pixel_bytes, palette, idat


class _Inflater:
    """The inflated IDAT stream, read a given number of bytes at a time (never more inflated than asked for)."""

    def __init__(self, data: bytes, spans: list[tuple[int, int]]):
        self._view = memoryview(data)
        self._spans = iter(spans)
        self._inflate = zlib.decompressobj()
        self._pending = self._view[0:0]

    def read(self, count: int) -> bytes:
        out = bytearray()
        try:
            while len(out) < count and not self._inflate.eof:
                if not self._pending:
                    span = next(self._spans, None)
                    if span is None:
                        break
                    self._pending = self._view[span[0] : span[1]]
                out += self._inflate.decompress(self._pending, count - len(out))
                self._pending = self._inflate.unconsumed_tail
        except zlib.error as error:
            raise undecodable_image(error) from None
        return bytes(out)
