"""Reading images into arrays, with errors that name the file and the problem.

8-bit files become ``[H, W, 3]`` uint8 RGB as they always have; 16-bit, 32-bit and float files
(PNG, TIFF) and multi-band TIFF stacks become ``[H, W, C]`` arrays of their raw values, which the
model's intensity rule (``mask2former.data.intensity``) maps onto its input scale.

Every image or mask file the package decodes is opened by ``open_image``: it refuses a path that
is not a regular file, checks the pixel count the header claims against ``max_image_pixels()``
*before* any pixel is decoded (a 100-byte PNG can claim 10^10 pixels), and turns whatever a
decoder throws at a hostile file (OSError, SyntaxError, struct.error, zlib.error, IndexError,
Pillow's DecompressionBomb* ...) into the caller's error naming the file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import re
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mask2former.config import MAX_CHANNELS
from mask2former.data.files import NOT_FOUND, path_problem
from mask2former.errors import ConfigError, ImageError, ImageTooLargeError, Mask2FormerError, brief

DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # Pillow's 16-bit, 32-bit integer and float modes
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")

DEFAULT_MAX_IMAGE_PIXELS = 178_956_970  # Pillow's own error threshold (2 x PIL.Image.MAX_IMAGE_PIXELS)
MAX_PIXELS_ENV = "MASK2FORMER_MAX_IMAGE_PIXELS"
_UNSET = object()
_max_pixels: object = _UNSET  # set_max_image_pixels() wins over the environment variable

ErrorFactory = Callable[[Path, str], Mask2FormerError]  # (file, problem) -> the error to raise


def set_max_image_pixels(limit: int | None) -> None:
    """Refuse images with more than ``limit`` pixels (None: no limit), process-wide.

    Pillow refuses images past twice its own ``PIL.Image.MAX_IMAGE_PIXELS`` while reading the
    header, before this module sees them, so a limit above that (or None) raises (or lifts)
    Pillow's too, process-wide, at the next image opened; Pillow offers no per-call limit."""
    global _max_pixels
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"max image pixels: expected a positive integer or None, got {brief(limit)}")
    _max_pixels = limit


def max_image_pixels() -> int | None:
    """The pixel limit in force: ``set_max_image_pixels``'s, else ``$MASK2FORMER_MAX_IMAGE_PIXELS``
    (a positive integer, or ``none``), else 178,956,970 (Pillow's error threshold)."""
    if _max_pixels is not _UNSET:
        return _max_pixels  # type: ignore[return-value]
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    if text.lower() == "none":
        return None
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV}={brief(text)}: expected a positive integer or 'none'")
    return value


def _allow_in_pillow(limit: int | None) -> None:
    """Raise Pillow's own bomb threshold (never lower it) so that it admits what ``limit`` does."""
    current = Image.MAX_IMAGE_PIXELS
    if current is None:
        return
    if limit is None:
        Image.MAX_IMAGE_PIXELS = None
    elif 2 * current < limit:
        Image.MAX_IMAGE_PIXELS = math.ceil(limit / 2)


class _SizedReader(io.BufferedReader):
    """A file whose ``read(n)`` never asks for more than the bytes left: Python allocates the
    ``n`` bytes up front, and Pillow skips the rest of a PNG chunk with ``read(length)``, so a
    720-byte PNG whose IDAT claims 2 GB would make it allocate 2 GB."""

    _BIG = 1 << 20

    def __init__(self, raw: io.FileIO) -> None:
        super().__init__(raw)
        self._size = os.fstat(raw.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > self._BIG:
            size = max(0, min(size, self._size - self.tell()))
        return super().read(size)


def image_error(path: Path, problem: str) -> ImageError:
    """The error factory for input images: ``ImageError("<path>: <problem>")``."""
    return ImageError(f"{path}: {problem}")


@contextlib.contextmanager
def open_image(path: str | os.PathLike, *, error: ErrorFactory = image_error,
               what: str = "image") -> Iterator[Image.Image]:
    """The Pillow image of ``path`` with its header read and its size checked, pixels not yet
    decoded; any failure inside the ``with`` block (decoding, converting) is ``error(path, ...)``,
    except the project's own errors, which pass through. ``what`` ("image", "mask") words it."""
    path = Path(path)
    _check_path(path, error, what)
    try:
        file = _SizedReader(io.FileIO(path))
    except OSError as e:  # unreadable: permissions, vanished since the check
        raise error(path, f"cannot open the {what} ({e.strerror or type(e).__name__})") from None
    with file, _opened(file, path, max_image_pixels(), error, what) as image:
        yield image


@contextlib.contextmanager
def _opened(file: IO[bytes], path: Path, limit: int | None, error: ErrorFactory, what: str,
            raise_hint: str = "") -> Iterator[Image.Image]:
    """``open_image``'s checks on an open binary file (``path`` names it in errors)."""
    _allow_in_pillow(limit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(file) as image:
                _check_pixels(image, path, limit, error, raise_hint)
                yield image
        except Mask2FormerError:
            raise
        except UnidentifiedImageError:
            raise error(path, "not an image (Pillow cannot identify the file format)") from None
        except Image.DecompressionBombError as e:  # Pillow's header check runs before ours can
            raise _too_large(path, _bomb_problem(e, limit, raise_hint), error) from None
        except Exception as e:  # any decoder failure on a hostile file: OSError, struct.error, zlib.error, ...
            raise error(path, f"cannot decode {what} ({type(e).__name__}: {str(e)[:200]})") from e


def _check_path(path: Path, error: ErrorFactory, what: str) -> None:
    """Raise ``error`` unless ``path`` is a regular file (a FIFO or a device would block)."""
    problem = path_problem(path)
    if problem == NOT_FOUND:
        raise error(path, "file not found" if what == "image" else f"{what} file not found")
    if problem is not None:
        raise error(path, f"{problem}, expected {'an' if what[0] in 'aeiou' else 'a'} {what} file"
                    if problem.startswith("is ") else problem)


def _too_large(path: Path, problem: str, error: ErrorFactory) -> Mask2FormerError:
    """Input images past the pixel limit raise ``ImageTooLargeError`` (a service answers 413 to it)."""
    return ImageTooLargeError(f"{path}: {problem}") if error is image_error else error(path, problem)


def _check_pixels(image: Image.Image, path: Path, limit: int | None, error: ErrorFactory, raise_hint: str = ""
                  ) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise error(path, f"empty image ({height}x{width} pixels, HxW)")
    if limit is not None and width * height > limit:
        raise _too_large(path, _too_many(width * height, limit, f" ({height}x{width}, HxW)", raise_hint), error)


def _too_many(pixels: int, limit: int, shape: str = "", raise_hint: str = "") -> str:
    """``raise_hint`` says how to raise the limit where the command-line one does not apply."""
    hint = raise_hint or (f"if the file is trusted, raise the limit (--max-image-pixels, {MAX_PIXELS_ENV} or "
                          "mask2former.data.image.set_max_image_pixels)")
    return f"image has {pixels:,} pixels{shape}, more than the limit of {limit:,}; {hint}"


def _bomb_problem(e: Exception, limit: int | None, raise_hint: str = "") -> str:
    """Our message for Pillow's DecompressionBombError, whose text holds the pixel count: ours
    is never above Pillow's threshold (``_allow_in_pillow``), so it is ours that is exceeded,
    unless someone lowered ``PIL.Image.MAX_IMAGE_PIXELS`` below it."""
    found = re.search(r"\((\d+) pixels\)", str(e))
    pixels = int(found.group(1)) if found else None
    if pixels is not None and limit is not None and pixels > limit:
        return _too_many(pixels, limit, raise_hint=raise_hint)
    return f"too large for Pillow's own limit (PIL.Image.MAX_IMAGE_PIXELS): {e}"


def to_rgb(image: Image.Image, source: str = "image") -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB from an 8-bit PIL image, applying its EXIF orientation.

    Grayscale and palette images are expanded to RGB and alpha is dropped (both lossless for the
    colours); 16-bit, 32-bit integer and float images are refused here: ``to_array`` keeps their
    values for the model's intensity rule, as any mapping to 8 bits is a choice about the data.
    """
    if image.mode in DEEP_MODES:
        raise ImageError(
            f"{source}: {'16-bit' if image.mode.startswith('I;16') else image.mode + '-mode (32-bit)'} image "
            "has no 8-bit RGB form; read it with to_array, whose values the model's intensity rule maps"
        )
    with contextlib.suppress(Exception):  # a broken EXIF block should not make the pixels unusable
        image = ImageOps.exif_transpose(image)
    try:
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError) as e:  # a mode Pillow cannot convert, or pixels that fail to decode now
        raise ImageError(f"{source}: cannot convert the {image.mode}-mode image to RGB ({str(e)[:200]})") from None


def to_array(image: Image.Image, source: str = "image") -> np.ndarray:
    """The pixels of a PIL image with its EXIF orientation applied: 8-bit images as ``[H, W, 3]``
    uint8 RGB (``to_rgb``), 16-bit, 32-bit integer and float images as ``[H, W, 1]`` float32 raw
    values (exact up to 2^24), for the model's intensity rule."""
    if image.mode not in DEEP_MODES:
        return to_rgb(image, source)
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    try:
        return np.asarray(image).astype(np.float32)[..., None]
    except (OSError, ValueError) as e:
        raise ImageError(f"{source}: cannot decode the {image.mode}-mode image ({str(e)[:200]})") from None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The pixels of an image file (see ``to_array``): ``[H, W, 3]`` uint8 RGB for 8-bit files,
    ``[H, W, C]`` float32 raw values for 16-bit, 32-bit and float files; a TIFF stack of bands
    (multispectral, RGB + NIR, 16-bit or float RGB) is read by tifffile as ``[H, W, bands]``, uint8
    for 8-bit bands, else float32."""
    path = Path(path)
    _check_path(path, image_error, "image")
    if path.suffix.lower() in TIFF_SUFFIXES:
        bands = _read_tiff_bands(path)
        if bands is not None:
            return bands
    try:
        with open_image(path) as image:
            image.load()
            return to_array(image, str(path))
    except ImageError as e:
        if path.suffix.lower() in TIFF_SUFFIXES and importlib.util.find_spec("tifffile") is None:
            raise ImageError(f"{e} (multi-band, 16-bit RGB and float TIFF files are read by tifffile: "
                             "pip install tifffile)") from None
        raise


def decode_image(data: bytes, source: str, *, max_pixels: int | None, raise_hint: str = "") -> np.ndarray:
    """``read_image`` for bytes already in memory (an upload, a message): what Pillow decodes,
    with the same checks, the header's pixel count against ``max_pixels`` before any pixel is
    decoded, and errors naming ``source`` (``raise_hint``: how to raise the limit there)."""
    if not data:
        raise ImageError(f"{source}: empty, expected an image")
    with io.BytesIO(data) as file, _opened(file, Path(source), max_pixels, image_error, "image",
                                           raise_hint) as image:
        image.load()
        return to_array(image, source)


def _read_tiff_bands(path: Path) -> np.ndarray | None:
    """``[H, W, C]`` of a TIFF whose bands Pillow would not keep (more than RGB, more than 8 bits,
    float, one band per page); None for the TIFFs Pillow reads as it always has (8-bit gray, RGB,
    palette, CMYK, with alpha), for files tifffile does not take for a TIFF, and without tifffile."""
    try:
        import tifffile
    except ImportError:
        return None
    try:
        with _SizedReader(io.FileIO(path)) as file, tifffile.TiffFile(file) as tif:
            series = tif.series[0]
            if _pillow_reads(tifffile, series):
                return None
            height, width, order = _band_layout(path, series.axes, series.shape)
            _check_tiff_size(path, height, width, int(np.prod(series.shape)), np.dtype(series.dtype).itemsize)
            data = series.asarray()
    except tifffile.TiffFileError:
        return None  # not a TIFF to tifffile: Pillow's turn, which names the problem
    except Mask2FormerError:
        raise
    except Exception as e:  # any decoder failure on a hostile file, or a compression without its codec
        raise ImageError(f"{path}: cannot decode the TIFF ({type(e).__name__}: {str(e)[:200]})") from None
    if data.dtype.kind not in "biuf":
        raise ImageError(f"{path}: TIFF pixels of type {data.dtype} are not image intensities")
    if data.shape != tuple(series.shape):  # tifffile hands back what it could read of a damaged file
        raise ImageError(f"{path}: the TIFF's pixel data ({'x'.join(map(str, data.shape)) or 'none'}) does not fill "
                         f"its declared {'x'.join(map(str, series.shape))} ({series.axes}); the file is damaged")
    bands = np.transpose(data, order).reshape(height, width, -1)
    return bands if bands.dtype == np.uint8 else bands.astype(np.float32)


def _check_tiff_size(path: Path, height: int, width: int, values: int, itemsize: int) -> None:
    """The pixel limit, and a bound on what a header may make us allocate: the bytes of RGBA at the
    pixel limit (a 100-byte compressed TIFF can claim a 10^4 x 10^4 x 1024 float cube)."""
    limit = max_image_pixels()
    if limit is None:
        return
    if height * width > limit:
        raise ImageError(f"{path}: {_too_many(height * width, limit, f' ({height}x{width}, HxW)')}")
    if values * itemsize > 4 * limit:
        raise ImageError(f"{path}: {height}x{width} pixels of {values // (height * width)} bands take "
                         f"{values * itemsize:,} bytes, more than the {4 * limit:,} allowed at the pixel limit of "
                         f"{limit:,}; if the file is trusted, raise the limit (--max-image-pixels, {MAX_PIXELS_ENV})")


def _pillow_reads(tifffile: types.ModuleType, series: Any) -> bool:
    """Whether this is an 8-bit TIFF Pillow reads as it always has (one page; gray, RGB, palette,
    CMYK or YCbCr, or gray / RGB with an alpha sample), so that its result stays bit-identical."""
    page = series.pages[0] if series.pages else None
    if page is None or len(series.pages) > 1 or page.dtype not in (np.uint8, np.bool_):
        return False
    photometric = tifffile.PHOTOMETRIC
    samples = int(page.samplesperpixel)
    alpha = any(int(e) in (1, 2) for e in page.extrasamples)  # associated / unassociated alpha
    if page.photometric in (photometric.PALETTE, photometric.SEPARATED, photometric.YCBCR):
        return True
    return samples == 1 or (samples == 3 and page.photometric == photometric.RGB) or (alpha and samples in (2, 4))


def _band_layout(path: Path, axes: str, shape: tuple[int, ...]) -> tuple[int, int, list[int]]:
    """``(height, width, axis order)`` putting Y, X first and the one band axis last."""
    if "Y" not in axes or "X" not in axes:
        raise ImageError(f"{path}: TIFF of axes {axes} {tuple(shape)} is not an image (no Y and X axes)")
    if 0 in shape:
        raise ImageError(f"{path}: TIFF of axes {axes} {tuple(shape)} holds no pixels")
    extra = [(a, n) for a, n in zip(axes, shape) if a not in "YX" and n > 1]
    if len(extra) > 1:
        raise ImageError(f"{path}: TIFF of axes {axes} {tuple(shape)} holds more than one stack of bands "
                         f"({', '.join(f'{a}={n}' for a, n in extra)}); expected one image with its bands")
    bands = extra[0][1] if extra else 1
    if bands > MAX_CHANNELS:
        raise ImageError(f"{path}: TIFF has {bands} bands, more than the {MAX_CHANNELS} supported")
    y, x = axes.index("Y"), axes.index("X")
    return shape[y], shape[x], [y, x, *(i for i, a in enumerate(axes) if a not in "YX")]


def list_images(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand files and directories (their image files, sorted, not recursive) into image paths."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if path_problem(p, expect="dir") is None:
            try:
                found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            except OSError as e:
                raise ImageError(f"{p}: cannot list the directory ({e.strerror or e})") from None
            if not found:
                raise ImageError(f"{p}: directory holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif path_problem(p) == NOT_FOUND:
            raise ImageError(f"{p}: file not found")
        else:
            paths.append(p)
    return paths
