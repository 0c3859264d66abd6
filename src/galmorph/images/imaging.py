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

Data that cannot be decoded (truncated, not an image) always raises
:class:`ImageFormatError`.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from galmorph.errors import InputDataError

#: The values of ``images.size_policy``.
SIZE_POLICIES = ("resize", "reject")

#: Side of the Galaxy Zoo 2 images.
GZ2_SIZE = 424


class ImageFormatError(InputDataError):
    """An image that cannot be decoded, or that the size policy rejects."""


def _describe(source) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    return f"<{len(source)} bytes>"


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
            image.load()
            if image.mode == "RGB" and image.size == (size, size):
                return np.asarray(image)
            problem = policy_problem(image.mode, image.size, size, size_policy)
            if problem:
                raise ImageFormatError(
                    f"{label}: image is {problem}, not {size}x{size} RGB; "
                    "set images.size_policy: resize to convert such images"
                )
            return np.asarray(_conform(image, size))
    except ImageFormatError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageFormatError(
            f"{label}: not a readable image ({error}); delete it so that it is downloaded again"
        ) from error


def _conform(image: Image.Image, size: int) -> Image.Image:
    """RGB, central square crop, Lanczos resize to ``size``."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    side = min(width, height)
    if width != height:
        left, top = (width - side) // 2, (height - side) // 2
        rgb = rgb.crop((left, top, left + side, top + side))
    if side != size:
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return rgb
