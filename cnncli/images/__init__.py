"""Images in and out of ``cnncli filter``.

- :mod:`~cnncli.images.read`: the one safe opener (regular files only, format by content,
  Pillow told that one format, sizes checked from headers) for PNG, JPEG, TIFF (tifffile),
  BMP, WebP, GIF, PPM/PGM, ``.npy`` arrays and ``.csv``/``.txt`` matrices.
- :mod:`~cnncli.images.pixels`: the loaded :class:`Picture`, gray, mapping floats to pixels.
- :mod:`~cnncli.images.write`: output formats, :func:`save_result` band by band, the writers'
  glue (PNG by ``_png``, TIFF by tifffile, the rest by Pillow) over :mod:`cnncli.outputs`.
"""

from cnncli.images.pixels import Picture, map_values, to_gray, to_rgb8
from cnncli.images.read import (
    IMAGE_EXTENSIONS,
    MATRIX_EXTENSIONS,
    is_matrix,
    load_image,
    load_npy,
    peek,
)
from cnncli.images.write import (
    RAW_FORMATS,
    SAVE_FORMATS,
    Bands,
    atomic_write,
    check_matrix_output,
    check_output,
    montage,
    output_format,
    save_montage,
    save_result,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "MATRIX_EXTENSIONS",
    "RAW_FORMATS",
    "SAVE_FORMATS",
    "Bands",
    "Picture",
    "atomic_write",
    "check_matrix_output",
    "check_output",
    "is_matrix",
    "load_image",
    "load_npy",
    "map_values",
    "montage",
    "output_format",
    "peek",
    "save_montage",
    "save_result",
    "to_gray",
    "to_rgb8",
]
