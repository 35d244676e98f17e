"""The lossless stage of entropy-coded methods: one zstd frame per tensor's codes.

A receiver must never let a payload choose how much memory it gets: the frame has to declare
its content size, that size has to be exactly what the stype and shape imply, and the frame
has to end exactly where the payload ends (zstd itself ignores bytes after a frame).
"""

from __future__ import annotations

import zstandard

LEVEL = 1  # zstd's fastest: higher levels find short matches that cost more than they save here


def compress(data: bytes) -> bytes:
    """One frame that declares its content size."""
    return zstandard.ZstdCompressor(level=LEVEL, write_content_size=True).compress(data)


def bound(size: int) -> int:
    """The longest frame `compress` makes of `size` bytes (ZSTD_COMPRESSBOUND)."""
    small = (128 << 10) - size >> 11 if size < 128 << 10 else 0
    return size + (size >> 8) + small


def decompress(frame: bytes, size: int) -> bytes:
    """The `size` bytes a frame holds; ValueError for a frame that declares another size or
    none, is damaged or truncated, or is followed by anything."""
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError:
        raise ValueError("codes are not a zstd frame") from None
    if declared != size:
        shown = "no size" if declared < 0 else f"{declared} bytes"
        raise ValueError(f"the zstd frame declares {shown} where stype and shape imply {size}")
    reader = zstandard.ZstdDecompressor().decompressobj()
    try:
        data = reader.decompress(frame)
    except zstandard.ZstdError as error:
        raise ValueError(f"damaged zstd frame ({error})") from None
    if not reader.eof or len(data) != size:
        raise ValueError("truncated zstd frame")
    if reader.unused_data:
        raise ValueError(f"{len(reader.unused_data)} bytes after the zstd frame")
    return data
