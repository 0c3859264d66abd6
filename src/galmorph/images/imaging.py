"""Decode one galaxy image into the stored form: ``size x size`` RGB, uint8.

The one size/mode policy, applied everywhere an image enters the workflow
(download verification and HDF5 conversion alike):

* A JPEG that is already ``size x size`` RGB is kept exactly as decoded.
* ``size_policy="resize"``: any other image is converted, never dropped.
  Other modes (greyscale ``L``, ``CMYK``, palette, ``RGBA``, 16-bit, ...) become
  RGB with Pillow's standard conversion (grey is copied to the three bands,
  alpha is discarded). An image that is not square is first cropped to its
  central square, so the centred galaxy keeps its shape, then resized to
  ``size x size`` with a Lanczos filter.
* ``size_policy="reject"``: any image that is not exactly ``size x size`` RGB
  raises :class:`ImageFormatError`.
* Every image is first turned upright as its EXIF orientation says (a camera's
  mirrored JPEG would otherwise swap clockwise and anticlockwise spirals), and
  16-bit greyscale is scaled to 8 bits (65535 is white), not clipped.
* Bounds of the policy: at most :data:`MAX_PIXELS` pixels (a decompression bomb
  is refused before it is decoded) and :data:`MAX_FILE_BYTES` bytes per file.

Data that cannot be decoded (truncated, not an image) always raises
:class:`ImageFormatError`.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageOps

from galmorph.errors import InputDataError

#: The values of ``images.size_policy``.
SIZE_POLICIES = ("resize", "reject")

#: Side of the Galaxy Zoo 2 images.
GZ2_SIZE = 424

#: Largest image accepted, in pixels (8,000 x 8,000; a GZ2 image has 424 x 424): a
#: small file that declares more is a decompression bomb, refused before decoding.
MAX_PIXELS = 64_000_000

#: Largest image file accepted, in bytes: a zip member or a download declaring more
#: is refused before it is read or inflated (a GZ2 JPEG is about 13 KB).
MAX_FILE_BYTES = 64 * 2**20

#: Pillow's modes of 16- and 32-bit greyscale, scaled to 8 bits by :func:`to_rgb`.
_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ImageFormatError(InputDataError):
    """An image that cannot be decoded, or that the size policy rejects."""


def _describe(source) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    return f"<{len(source)} bytes>"


def check_pixels(image: Image.Image, label: str) -> None:
    """Refuse an opened (not yet decoded) image larger than :data:`MAX_PIXELS`."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageFormatError(
            f"{label}: {width}x{height} pixels, more than the {MAX_PIXELS:,} an image may "
            "have (a decompression bomb?); refused before decoding"
        )


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of ``image`` once turned as its EXIF orientation says."""
    orientation = image.getexif().get(0x0112, 1)
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def to_rgb(image: Image.Image) -> Image.Image:
    """A decoded image upright (EXIF orientation applied) and in 8-bit RGB.

    16-bit (and 32-bit) greyscale is scaled so that its full range maps onto
    0-255; Pillow's own conversion would clip everything above 255 to white.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in _WIDE_GREY:
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if image.mode == "F" and values.max(initial=0.0) <= 1.0 else 65535.0
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, mode="L")
    return image if image.mode == "RGB" else image.convert("RGB")


def policy_problem(mode: str, shape: tuple[int, int], size: int, size_policy: str) -> str | None:
    """Why the size policy refuses an image of ``mode`` and ``shape`` (width, height), or
    None if it takes it (as it is, or converted). Download verification asks this before
    storing a file; :func:`load_image` before converting one."""
    if size_policy not in SIZE_POLICIES:
        raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
    if size_policy == "reject" and (tuple(shape) != (size, size) or mode != "RGB"):
        return f"{shape[0]}x{shape[1]} {mode}, expected {size}x{size} RGB (size_policy reject)"
    return None


def load_image(
    source: str | os.PathLike | bytes | bytearray | memoryview,
    size: int = GZ2_SIZE,
    size_policy: str = "resize",
    *,
    name: str | None = None,
) -> np.ndarray:
    """Decode an image file or its bytes into a ``(size, size, 3)`` uint8 array.

    Parameters
    ----------
    source : path or bytes
        A JPEG (or any format Pillow reads) on disk or in memory.
    size : int
        Side of the stored square image.
    size_policy : {"resize", "reject"}
        What happens to an image that is not ``size x size`` RGB (module docstring).
    name : str, optional
        How error messages name the image (default: the path, or the byte count).

    Raises
    ------
    ImageFormatError
        If the data cannot be decoded, or the policy is ``reject`` and the image
        is not ``size x size`` RGB.
    """
    if size_policy not in SIZE_POLICIES:
        raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
    label = name or _describe(source)
    handle = source if isinstance(source, str | os.PathLike) else io.BytesIO(source)
    try:
        with Image.open(handle) as image:
            check_pixels(image, label)
            image.load()
            problem = policy_problem(image.mode, upright_size(image), size, size_policy)
            if problem:
                raise ImageFormatError(
                    f"{label}: image is {problem}, not {size}x{size} RGB; "
                    "set images.size_policy: resize to convert such images"
                )
            upright = to_rgb(image)
            if upright.size == (size, size):
                return np.asarray(upright)
            return np.asarray(_conform(upright, size))
    except ImageFormatError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageFormatError(
            f"{label}: not a readable image ({error}); delete it so that it is downloaded again"
        ) from error


def _conform(rgb: Image.Image, size: int) -> Image.Image:
    """Central square crop of an RGB image, Lanczos resize to ``size``."""
    width, height = rgb.size
    side = min(width, height)
    if width != height:
        left, top = (width - side) // 2, (height - side) // 2
        rgb = rgb.crop((left, top, left + side, top + side))
    if side != size:
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return rgb
