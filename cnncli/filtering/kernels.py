"""The named-kernel library and the custom-kernel parser.

A kernel spec is one of

* a name with optional parameters: ``sobel``, ``gaussian:sigma=2``, ``motion:length=9,angle=45``;
* an inline matrix: ``"1,0,-1;1,0,-1;1,0,-1"`` (rows split by ``;`` or newlines, values by commas
  or spaces);
* a file: ``.txt``/``.csv`` rows, ``.json`` nested list (2-D, 3-D or 4-D), ``.npy`` array.

Every kernel is stored as correlation weights (what CNN layers compute), the way OpenCV's
``filter2D`` and PyTorch's ``conv2d`` take them. Gradient operators come as an x/y pair and compass
sets as eight rotations; :class:`Kernel` says how to combine their responses and which output mapping
suits the result.

Every source is hostile until checked: a kernel's size passes the ``kernel-taps`` limit from
its parameters, its row count or its .npy header before any weight array exists; text files pass
``file-bytes`` before they are read and JSON ``nesting`` before it is parsed; weights must fit in
float32 (filters compute in it); only regular files are opened, and a spec that cannot be a file
name (too long, a NUL) is never an OSError.

Pure NumPy: no Numba here, so ``cnncli kernels`` starts fast.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from cnncli import limits
from cnncli.enums import Combine, Mapping
from cnncli.errors import CnnCliError, KernelError, UsageError
from cnncli.npyfile import NpyHeaderError, read_header


class KernelSpecError(KernelError, UsageError):
    """A kernel typed on the command line (name, parameter, inline matrix) that is malformed:
    a usage error (exit 2). Problems inside kernel files stay :class:`KernelError` (exit 1)."""


Array = npt.NDArray[np.float64]

#: Filters compute in float32, so every weight must fit in it.
F32_MAX = float(np.finfo(np.float32).max)
_F32_RANGE = "the float32 range ±3.4e38 filters compute in"
#: A number written with more characters than this (hundreds of digits) is refused unread.
MAX_NUMBER_CHARS = 100
#: Below about 0.18 a float32 Gaussian is already the identity; 0.1 is a round floor under it.
MIN_SIGMA = 0.1
#: Slugs name output files; a huge kernel file name must not make them too long to create.
_MAX_SLUG = 60


def _quote(text: str, keep: int = 120) -> str:
    """``repr`` of ``text`` (control characters escaped), its middle cut out when long."""
    if len(text) <= keep:
        return repr(text)
    half = (keep - 1) // 2
    return f"{text[:half] + '…' + text[-half:]!r} ({len(text):,} characters)"


def _shown(text: str, keep: int = 120) -> str:
    """A spec shown without quotes (``gaussian:size=15001``), escaped and shortened like
    :func:`_quote` when it is long or holds anything but plain printable characters."""
    return text if len(text) <= keep and text.isprintable() else _quote(text, keep)


def _count(n: int) -> str:
    """``1,048,576``; ``1e+76`` for numbers too long to read."""
    return f"{n:,}" if n < 10**15 else f"{float(n):.3g}"


def _check_taps(shape: Sequence[int], source: str) -> None:
    """The one taps check every kernel passes (named, inline, each file format), from the
    shape alone, before any weight array is built."""
    taps = math.prod(shape)
    limit = limits.get("kernel-taps")
    if taps <= limit:
        return
    dims = "×".join(_count(int(n)) for n in shape)
    if taps > 2**62:  # beyond any limit --limit accepts: no number to suggest
        raise limits.LimitError(
            f"kernel {source} has {_count(taps)} taps ({dims}), far over the kernel-taps "
            f"limit of {limit:,}; use a smaller kernel"
        )
    limits.check("kernel-taps", taps, f"kernel {source} has {taps:,} taps ({dims})")


@dataclass(frozen=True)
class Kernel:
    """A resolved kernel: weights plus how to use them.

    ``weights`` holds one array for :attr:`Combine.SINGLE`, the x and y kernels for magnitude and
    direction, and every rotation for a compass set.
    """

    name: str
    slug: str
    weights: tuple[Array, ...]
    combine: Combine = Combine.SINGLE
    mapping: Mapping = Mapping.CLIP
    description: str = ""
    params: dict[str, float] = field(default_factory=dict)
    #: The fixed range of the result (direction: 0..360), used by ``normalize`` instead of min..max.
    value_range: tuple[float, float] | None = None

    @property
    def matrix(self) -> Array:
        """The (first) weight array, for display and single kernels."""
        return self.weights[0]

    @property
    def ndim(self) -> int:
        return int(self.matrix.ndim)

    @property
    def spatial(self) -> tuple[int, int]:
        """(kh, kw) of the kernel."""
        h, w = self.matrix.shape[-2:]
        return int(h), int(w)


def gain(kernel: Kernel) -> float:
    """The largest Σ|k| of one output map: how far the result can exceed the input's values."""
    best = 0.0
    for w in kernel.weights:
        sums = np.abs(w).reshape(w.shape[0], -1).sum(axis=1) if w.ndim == 4 else [np.abs(w).sum()]
        best = max(best, float(np.max(sums)))
    return best


# --------------------------------------------------------------------------------------------
# Builders of the named kernels
# --------------------------------------------------------------------------------------------


def _odd_size(value: float, what: str) -> int:
    size = _whole(value, what)
    if size < 1:
        raise KernelSpecError(f"{what} must be at least 1, got {size}")
    return size


def _whole(value: float, what: str) -> int:
    if value != int(value):
        raise KernelSpecError(f"{what} must be a whole number, got {value:g}")
    return int(value)


def _sigma(value: float) -> float:
    if not value > 0:
        raise KernelSpecError(f"sigma must be positive, got {value:g}")
    if value < MIN_SIGMA:
        raise KernelSpecError(
            f"sigma must be at least {MIN_SIGMA:g}, got {value:g}; a narrower Gaussian is "
            "already the identity kernel"
        )
    return value


def gaussian_1d(size: int, sigma: float) -> Array:
    """Normalised 1-D Gaussian, as ``cv2.getGaussianKernel(size, sigma)``."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    out: Array = g / g.sum()
    return out


def _gaussian_size_sigma(size: float | None, sigma: float | None) -> tuple[int, float]:
    # OpenCV's rules (GaussianBlur on 8-bit images): size from sigma as round(6σ+1) made odd,
    # sigma from size as 0.3·((size−1)/2 − 1) + 0.8, so both tools blur alike.
    if size is None and sigma is None:
        sigma = 1.0
    if size is None:
        assert sigma is not None
        s = _sigma(sigma)
        return int(round(s * 6 + 1)) | 1, s
    n = _odd_size(size, "size")
    if sigma is None:
        return n, max(0.3 * ((n - 1) * 0.5 - 1) + 0.8, 1e-6)
    return n, _sigma(sigma)


def _gaussian(p: dict[str, float]) -> Array:
    n, s = _gaussian_size_sigma(p.get("size"), p.get("sigma"))
    g = gaussian_1d(n, s)
    return np.outer(g, g)


def _box(p: dict[str, float]) -> Array:
    n = _odd_size(p["size"], "size")
    return np.full((n, n), 1.0 / (n * n))


def _identity(p: dict[str, float]) -> Array:
    n = _odd_size(p["size"], "size")
    k = np.zeros((n, n))
    k[(n - 1) // 2, (n - 1) // 2] = 1.0
    return k


def _sharpen(p: dict[str, float]) -> Array:
    a = p["amount"]
    return np.array([[0, -a, 0], [-a, 1 + 4 * a, -a], [0, -a, 0]], dtype=np.float64)


def _unsharp(p: dict[str, float]) -> Array:
    n, s = _gaussian_size_sigma(p.get("size"), p.get("sigma", 1.0))
    g = gaussian_1d(n, s)
    blur = np.outer(g, g)
    ident = np.zeros_like(blur)
    ident[(n - 1) // 2, (n - 1) // 2] = 1.0
    amount = p["amount"]
    out: Array = ident + amount * (ident - blur)
    return out


def _emboss(p: dict[str, float]) -> Array:
    s = p["strength"]
    return s * np.array([[-2, -1, 0], [-1, 0, 1], [0, 1, 2]], dtype=np.float64)


def _laplacian(_: dict[str, float]) -> Array:
    return np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)


def _laplacian8(_: dict[str, float]) -> Array:
    return np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]], dtype=np.float64)


def _log_side(p: dict[str, float]) -> int:
    sigma = _sigma(p["sigma"])
    return _odd_size(p["size"], "size") if "size" in p else 2 * math.ceil(3 * sigma) + 1


def _log(p: dict[str, float]) -> Array:
    sigma = p["sigma"]
    n = _log_side(p)
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    k = -(1 - r2 / (2 * sigma**2)) * np.exp(-r2 / (2 * sigma**2)) / (math.pi * sigma**4)
    # Zero sum, so flat regions give exactly zero (a truncated LoG otherwise drifts).
    out: Array = k - k.mean()
    return out


def _vertical_edge(_: dict[str, float]) -> Array:
    return np.array([[1, 0, -1]] * 3, dtype=np.float64)


def _horizontal_edge(_: dict[str, float]) -> Array:
    return np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]], dtype=np.float64)


def _motion(p: dict[str, float]) -> Array:
    length = _odd_size(p["length"], "length")
    angle = math.radians(p["angle"])
    # A line through the centre, anti-aliased by sampling it densely and splatting bilinearly.
    c = (length - 1) / 2
    k = np.zeros((length, length))
    steps = max(4 * length, 8)
    for t in np.linspace(-c, c, steps):
        x = c + t * math.cos(angle)
        y = c - t * math.sin(angle)  # image rows grow downwards; angles count anticlockwise
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        for yy, xx, w in (
            (y0, x0, (1 - fy) * (1 - fx)),
            (y0, x0 + 1, (1 - fy) * fx),
            (y0 + 1, x0, fy * (1 - fx)),
            (y0 + 1, x0 + 1, fy * fx),
        ):
            if 0 <= yy < length and 0 <= xx < length:
                k[yy, xx] += w
    out: Array = k / k.sum()
    return out


def _binomial(n: int) -> Array:
    row = np.array([1.0])
    for _ in range(n - 1):
        row = np.convolve(row, [1.0, 1.0])
    return row


def _sobel_pair(p: dict[str, float]) -> tuple[Array, Array]:
    n = _whole(p["size"], "size")
    if n not in (3, 5, 7):
        raise KernelSpecError(f"sobel size must be 3, 5 or 7 (as cv2.Sobel), got {n}")
    smooth = _binomial(n)
    deriv = np.convolve(_binomial(n - 2), [-1.0, 0.0, 1.0])  # cv2.getDerivKernels
    kx = np.outer(smooth, deriv)
    return kx, kx.T.copy()


def _pair(kx: Sequence[Sequence[float]]) -> Callable[[dict[str, float]], tuple[Array, Array]]:
    def build(_: dict[str, float]) -> tuple[Array, Array]:
        x = np.array(kx, dtype=np.float64)
        return x, x.T.copy()

    return build


def _roberts(_: dict[str, float]) -> tuple[Array, Array]:
    return (
        np.array([[1, 0], [0, -1]], dtype=np.float64),
        np.array([[0, 1], [-1, 0]], dtype=np.float64),
    )


def _rotations(seed: Sequence[Sequence[float]]) -> tuple[Array, ...]:
    # Rotate the outer ring of a 3×3 kernel one step (45°) at a time: the compass directions.
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    base = np.array(seed, dtype=np.float64)
    values = [base[i] for i in ring]
    out = []
    for r in range(8):
        k = base.copy()
        for j, pos in enumerate(ring):
            k[pos] = values[(j - r) % 8]
        out.append(k)
    return tuple(out)


GRADIENTS: dict[
    str, tuple[Callable[[dict[str, float]], tuple[Array, Array]], dict[str, float], str]
] = {
    "sobel": (_sobel_pair, {"size": 3}, "Sobel derivative (cv2.Sobel); size 3, 5 or 7"),
    "scharr": (
        _pair([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]]),
        {},
        "Scharr derivative (cv2.Scharr), better rotation symmetry",
    ),
    "prewitt": (_pair([[-1, 0, 1]] * 3), {}, "Prewitt derivative (box-smoothed)"),
    "roberts": (_roberts, {}, "Roberts cross, 2×2 diagonal differences"),
}

COMPASS: dict[str, tuple[Sequence[Sequence[float]], str]] = {
    "kirsch": ([[5, 5, 5], [-3, 0, -3], [-3, -3, -3]], "Kirsch compass: max over 8 directions"),
    "robinson": (
        [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
        "Robinson compass (Sobel-like): max over 8 directions",
    ),
}


@dataclass(frozen=True)
class _Named:
    build: Callable[[dict[str, float]], Array]
    defaults: dict[str, float | None]
    mapping: Mapping
    description: str
    #: The side n of the n×n kernel, from the parameters alone (checked before building);
    #: None for fixed-size kernels.
    side: Callable[[dict[str, float]], int] | None = None


def _size_side(p: dict[str, float]) -> int:
    return _odd_size(p["size"], "size")


def _gaussian_side(p: dict[str, float]) -> int:
    return _gaussian_size_sigma(p.get("size"), p.get("sigma"))[0]


def _motion_side(p: dict[str, float]) -> int:
    return _odd_size(p["length"], "length")


SINGLES: dict[str, _Named] = {
    "identity": _Named(
        _identity, {"size": 3}, Mapping.CLIP, "leaves the image unchanged", _size_side
    ),
    "box": _Named(
        _box, {"size": 3}, Mapping.CLIP, "mean of a size×size window (cv2.blur)", _size_side
    ),
    "gaussian": _Named(
        _gaussian,
        {"sigma": None, "size": None},
        Mapping.CLIP,
        "Gaussian blur (cv2.GaussianBlur); sigma 1 by default, size round(6σ+1) made odd, "
        "or sigma from size as OpenCV does",
        _gaussian_side,
    ),
    "sharpen": _Named(_sharpen, {"amount": 1}, Mapping.CLIP, "centre minus 4-neighbours"),
    "unsharp": _Named(
        _unsharp,
        {"sigma": 1, "amount": 1, "size": None},
        Mapping.CLIP,
        "unsharp mask: image + amount·(image − gaussian)",
        _gaussian_side,
    ),
    "emboss": _Named(_emboss, {"strength": 1}, Mapping.OFFSET, "relief lit from the top left"),
    "laplacian": _Named(
        _laplacian, {}, Mapping.ABS, "4-neighbour Laplacian (cv2.Laplacian ksize=1)"
    ),
    "laplacian8": _Named(_laplacian8, {}, Mapping.ABS, "8-neighbour Laplacian"),
    "log": _Named(
        _log,
        {"sigma": 1.4, "size": None},
        Mapping.NORMALIZE,
        "Laplacian of Gaussian (zero sum); size 2·⌈3σ⌉+1 by default",
        _log_side,
    ),
    "vertical-edge": _Named(
        _vertical_edge, {}, Mapping.ABS, "the course notes' [[1,0,−1]]×3: vertical edges"
    ),
    "horizontal-edge": _Named(
        _horizontal_edge, {}, Mapping.ABS, "[[1,1,1],[0,0,0],[−1,−1,−1]]: horizontal edges"
    ),
    "motion": _Named(
        _motion,
        {"length": 9, "angle": 0},
        Mapping.CLIP,
        "motion blur along a line of `length` pixels at `angle` degrees (anticlockwise)",
        _motion_side,
    ),
}


def _names() -> list[str]:
    names = list(SINGLES)
    for g in GRADIENTS:
        names += [g, f"{g}-x", f"{g}-y", f"{g}-dir"]
    names += list(COMPASS)
    return names


NAMES: tuple[str, ...] = tuple(_names())


def catalogue() -> list[Kernel]:
    """Every named kernel with default parameters, in display order (x/y/dir variants left out)."""
    out = [named(n) for n in SINGLES]
    out += [named(g) for g in GRADIENTS]
    out += [named(c) for c in COMPASS]
    return out


def default_params(base: str) -> dict[str, float | None]:
    """The parameters a named kernel takes, with defaults (None: derived from the others)."""
    if base in SINGLES:
        return dict(SINGLES[base].defaults)
    if base in GRADIENTS:
        return dict(GRADIENTS[base][1])
    if base in COMPASS:
        return {}
    raise KernelSpecError(_unknown_message(base))


# --------------------------------------------------------------------------------------------
# Names with parameters
# --------------------------------------------------------------------------------------------


def _unknown_message(name: str) -> str:
    close = (
        difflib.get_close_matches(name.lower(), NAMES, n=3, cutoff=0.5) if len(name) <= 40 else []
    )
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return (
        f"unknown kernel {_quote(name)}; {hint}run 'cnncli kernels' for the list, or give a "
        'matrix like "1,0,-1;1,0,-1;1,0,-1" or a .txt/.csv/.json/.npy file'
    )


def _parse_params(base: str, text: str, allowed: dict[str, Any]) -> dict[str, float]:
    params: dict[str, float] = {}
    if not text.strip():
        return params
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if not eq or not key:
            raise KernelSpecError(
                f"kernel parameter {_quote(item.strip())} of {base!r} is not name=value; "
                f"write e.g. {base}:{next(iter(allowed), 'size')}=3"
            )
        if key not in allowed:
            valid = ", ".join(allowed) if allowed else "none"
            raise KernelSpecError(
                f"kernel {base!r} has no parameter {_quote(key)}; valid parameters: {valid}"
            )
        if len(value) > MAX_NUMBER_CHARS:
            raise KernelSpecError(
                f"kernel parameter {key}={_quote(value)} of {base!r} is too long for a number; "
                f"write at most {MAX_NUMBER_CHARS} characters"
            )
        try:
            number = float(value)
        except ValueError:
            raise KernelSpecError(
                f"kernel parameter {key}={value!r} of {base!r} is not a number"
            ) from None
        if not math.isfinite(number):
            raise KernelSpecError(f"kernel parameter {key}={value} of {base!r} must be finite")
        if abs(number) > F32_MAX:
            raise KernelSpecError(
                f"kernel parameter {key}={value} of {base!r} is outside {_F32_RANGE}"
            )
        params[key] = number
    return params


def _fmt_param(v: float) -> str:
    return str(int(v)) if v == int(v) else f"{v:g}"


def _slug(base: str, params: dict[str, float]) -> str:
    parts = [base] + [f"{k}{_fmt_param(v)}".replace(".", "p") for k, v in params.items()]
    return "-".join(parts)[:_MAX_SLUG]


def _checked_weights(weights: tuple[Array, ...], spec: str) -> tuple[Array, ...]:
    """Refuse a built named kernel whose parameters pushed a weight out of float32 (or to NaN,
    e.g. ``sharpen:amount=3e38``): filtering with it would write garbage."""
    for w in weights:
        with np.errstate(invalid="ignore"):
            bad = np.argwhere(~(np.abs(w) <= F32_MAX))
        if len(bad):
            idx = tuple(int(i) for i in bad[0])
            raise KernelSpecError(
                f"kernel {spec} has weight {w[idx]:g} at {list(idx)}, outside {_F32_RANGE}; "
                "use smaller parameters"
            )
    return weights


def named(spec: str) -> Kernel:
    """Build a named kernel from ``name`` or ``name:param=value,...``.

    The kernel's size comes from its parameters first and passes the ``kernel-taps`` limit
    before any array is built; weights outside float32 are refused.
    """
    text = spec.strip()
    shown = _shown(text)
    base, _, rest = text.partition(":")
    base = base.strip().lower()
    variant = ""
    root = base
    for suffix in ("-x", "-y", "-dir"):
        if base.endswith(suffix) and base[: -len(suffix)] in GRADIENTS:
            root, variant = base[: -len(suffix)], suffix
    if root in SINGLES:
        entry = SINGLES[root]
        params = _parse_params(base, rest, entry.defaults)
        full = {k: v for k, v in entry.defaults.items() if v is not None} | params
        try:
            if entry.side is not None:
                n = entry.side(full)
                _check_taps((n, n), shown)
            with np.errstate(all="ignore"):  # out-of-range results are refused just below
                weights = entry.build(full)
        except KernelSpecError as err:  # "sigma must be positive": say which kernel
            raise KernelSpecError(f"kernel {shown}: {err}") from None
        _checked_weights((weights,), shown)
        display = dict(full)
        if root in ("gaussian", "unsharp"):
            n, s = _gaussian_size_sigma(full.get("size"), full.get("sigma"))
            display |= {"size": n, "sigma": round(s, 6)}
        if root == "log":
            display |= {"size": weights.shape[0]}
        return Kernel(
            base,
            _slug(base, params),
            (weights,),
            Combine.SINGLE,
            entry.mapping,
            entry.description,
            display,
        )
    if root in GRADIENTS:
        build, defaults, desc = GRADIENTS[root]
        params = _parse_params(base, rest, defaults)
        full = defaults | params
        try:
            kx, ky = build(full)
        except KernelSpecError as err:
            raise KernelSpecError(f"kernel {shown}: {err}") from None
        slug = _slug(base, params)
        if variant == "-x":
            return Kernel(base, slug, (kx,), Combine.SINGLE, Mapping.ABS, f"{desc}: x only", full)
        if variant == "-y":
            return Kernel(base, slug, (ky,), Combine.SINGLE, Mapping.ABS, f"{desc}: y only", full)
        if variant == "-dir":
            return Kernel(
                base,
                slug,
                (kx, ky),
                Combine.DIRECTION,
                Mapping.NORMALIZE,
                f"{desc}: gradient direction atan2(gy, gx) in degrees 0..360",
                full,
                (0.0, 360.0),
            )
        return Kernel(
            base,
            slug,
            (kx, ky),
            Combine.MAGNITUDE,
            Mapping.ABS,
            f"{desc}: magnitude √(gx²+gy²)",
            full,
        )
    if root in COMPASS:
        seed, desc = COMPASS[root]
        _parse_params(base, rest, {})
        return Kernel(base, base, _rotations(seed), Combine.MAXIMUM, Mapping.CLIP, desc, {})
    raise KernelSpecError(_unknown_message(base))


def direction_of(kernel: Kernel) -> Kernel:
    """The direction variant of a gradient kernel (``--direction``)."""
    if kernel.combine not in (Combine.MAGNITUDE, Combine.DIRECTION):
        raise KernelSpecError(
            f"--direction needs a gradient kernel (sobel, scharr, prewitt, roberts), not {_quote(kernel.name)}"
        )
    return Kernel(
        kernel.name + ("" if kernel.combine is Combine.DIRECTION else "-dir"),
        kernel.slug if kernel.combine is Combine.DIRECTION else kernel.slug + "-dir",
        kernel.weights,
        Combine.DIRECTION,
        Mapping.NORMALIZE,
        kernel.description.split(":")[0] + ": gradient direction atan2(gy, gx) in degrees 0..360",
        kernel.params,
        (0.0, 360.0),
    )


# --------------------------------------------------------------------------------------------
# Custom matrices
# --------------------------------------------------------------------------------------------

_INLINE = re.compile(r"^[\s0-9eE+\-.,;nNaAiIfF\[\]]+$")
#: What ends a row: ``;`` and every line break ``str.splitlines`` knows.
_BREAKS = r";\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_COMMENT = re.compile(rf"#[^{_BREAKS}]*")
#: A whole row (it starts after a break) holding something besides spaces, commas and brackets.
#: The look-behind keeps the search linear: a long row of spaces is scanned once, not per start.
_VALUE_ROW = re.compile(rf"(?<![^{_BREAKS}])[^{_BREAKS}]*[^{_BREAKS}\s,\[\]][^{_BREAKS}]*")
_TOKEN = re.compile(r"[^,\s]+")
#: A run of number characters too long to be a number anyone means (JSON files).
_NUMBER_RUN = re.compile(rf"[0-9.eE+\-]{{{MAX_NUMBER_CHARS + 1},}}")
_NPY_FIX = "save the kernel with numpy.save"


def _cut(text: str, keep: int = 100) -> str:
    """``text`` shortened to about ``keep`` characters (middle cut out), for error lines."""
    if len(text) <= keep:
        return text
    half = (keep - 1) // 2
    return f"{text[:half]}…{text[-half:]}"


#: The plural of what :func:`parse_rows` reads, for its messages.
_PLURAL = {"kernel": "kernels", "matrix": "matrices"}


def _number(
    token: str, where: str, error: type[CnnCliError] = KernelError, noun: str = "kernel"
) -> float:
    if len(token) > MAX_NUMBER_CHARS:
        raise error(
            f"{noun} {where}: {_quote(token)} is too long for a number; "
            f"write at most {MAX_NUMBER_CHARS} characters, e.g. 1.5e-3"
        )
    try:
        value = float(token)
    except ValueError:
        raise error(f"{noun} {where}: {token!r} is not a number") from None
    if math.isnan(value) or token.lstrip("+-").lower() in ("inf", "infinity"):
        raise error(f"{noun} {where} is {token}; {_PLURAL[noun]} need finite numbers")
    if abs(value) > F32_MAX:
        raise error(f"{noun} {where} is {token}, outside {_F32_RANGE}")
    return value


def _rows(text: str) -> Iterator[str]:
    """The rows of ``text`` (comments already removed) that hold values, enclosing brackets
    dropped, one at a time: a large file is never split into a list."""
    for match in _VALUE_ROW.finditer(text):
        yield match.group().strip().strip("[]").strip()


def _count_values(row: str) -> int:
    return sum(1 for _ in _TOKEN.finditer(row))


def parse_rows(
    text: str,
    source: str,
    error: type[CnnCliError] = KernelError,
    *,
    noun: str = "kernel",
    check_size: Callable[[tuple[int, int]], None] | None = None,
) -> Array:
    """Rows of numbers (``;`` or line breaks between rows; commas, spaces or tabs between
    values) → a 2-D matrix: a kernel, or (``noun`` ``"matrix"``) a matrix to filter.

    Blank lines and ``#`` comments are skipped. The rows are counted first, so the size passes
    its limit (``check_size``; by default the kernel's ``kernel-taps``) before any value is
    converted; ragged rows, non-numbers, NaN/inf, values outside float32 and empty input raise
    ``error`` naming the row.
    """
    text = _COMMENT.sub("", text)
    first = next(_rows(text), None)
    if first is None:
        raise error(f"{noun} {source} is empty; give at least one number")
    nrows = _VALUE_ROW.subn("", text)[1]  # counted in C: a file of 5 million rows is quick
    ncols = _count_values(first)
    if check_size is None:
        _check_taps((nrows, ncols), source)
    else:
        check_size((nrows, ncols))
    out = np.empty((nrows, ncols), dtype=np.float64)
    for r, row in enumerate(_rows(text), 1):
        count = _count_values(row)
        if count != ncols:
            raise error(
                f"{noun} {source} row {r} has {count:,} value{'s' if count != 1 else ''} "
                f"but row 1 has {ncols:,}; every row needs the same number of values"
            )
        for c, match in enumerate(_TOKEN.finditer(row), 1):
            where = f"{source} row {r} value {c}"
            out[r - 1, c - 1] = _number(match.group(), where, error, noun)
    return out


class _Constant(str):
    """``NaN``, ``Infinity`` or ``-Infinity`` as a JSON file wrote them, kept apart from numbers
    so that they are refused with their position."""


def _from_nested(data: object, source: str) -> Array:
    def where(path: tuple[int, ...]) -> str:
        return "".join(f"[{i}]" for i in path)

    def check(node: object, path: tuple[int, ...]) -> tuple[int, ...]:
        if isinstance(node, _Constant):
            raise KernelError(
                f"kernel {source} at {where(path) or 'top'} is {node}; kernels need finite numbers"
            )
        if isinstance(node, bool) or node is None or isinstance(node, str | dict):
            shown = _quote(node) if isinstance(node, str) else _cut(repr(node), 60)
            raise KernelError(
                f"kernel {source} at {where(path) or 'top'}: {shown} is not a number or a list"
            )
        if isinstance(node, int | float):
            if isinstance(node, float) and math.isinf(node):
                raise KernelError(
                    f"kernel {source} at {where(path)} overflows to infinity; keep numbers "
                    f"within {_F32_RANGE}"
                )
            if abs(node) > F32_MAX:
                raise KernelError(
                    f"kernel {source} at {where(path)} is {float(node):.7g}, outside {_F32_RANGE}"
                )
            return ()
        if not isinstance(node, list) or not node:
            raise KernelError(
                f"kernel {source} at {where(path) or 'top'} is an empty list; give numbers"
            )
        if len(path) >= 4:
            raise KernelError(
                f"kernel {source} has more than 4 dimensions; give 2-D (kh×kw), "
                "3-D (C_in×kh×kw) or 4-D (C_out×C_in×kh×kw)"
            )
        shapes = [check(x, (*path, i)) for i, x in enumerate(node)]
        for i, s in enumerate(shapes):
            if s != shapes[0]:
                raise KernelError(
                    f"kernel {source} is ragged: {where(path)}[{i}] has shape "
                    f"{list(s) or 'scalar'} but {where(path)}[0] has {list(shapes[0]) or 'scalar'}"
                )
        return (len(node), *shapes[0])

    shape = check(data, ())
    if len(shape) not in (2, 3, 4):
        raise KernelError(
            f"kernel {source} has {len(shape)} dimensions; give 2-D (kh×kw), "
            "3-D (C_in×kh×kw) or 4-D (C_out×C_in×kh×kw)"
        )
    _check_taps(shape, source)
    return np.array(data, dtype=np.float64)


def _json_depth(raw: bytes) -> int:
    """How deep ``[`` and ``{`` nest in ``raw``, counted without recursion (brackets inside
    strings too: a kernel holds no strings, so such a file is refused either way)."""
    b = np.frombuffer(raw, dtype=np.uint8)
    opens = (b == ord("[")) | (b == ord("{"))
    marks = np.flatnonzero(opens | (b == ord("]")) | (b == ord("}")))
    if not marks.size:
        return 0
    steps = np.where(opens[marks], 1, -1)
    return int(np.cumsum(steps).max())


def _load_json(raw: bytes, text: str, source: str) -> Array:
    # Python's JSON reader recurses once per bracket: bound the depth before it starts.
    depth = _json_depth(raw)
    limits.check("nesting", depth, f"kernel {source} nests brackets {depth:,} deep")
    # Integers of thousands of digits make json raise ValueError; nobody means them anyway.
    long = _NUMBER_RUN.search(text)
    if long:
        line = text.count("\n", 0, long.start()) + 1
        raise KernelError(
            f"kernel {source} line {line}: {_quote(long.group())} is too long for a number; "
            f"write at most {MAX_NUMBER_CHARS} characters, e.g. 1.5e-3"
        )
    try:
        data = json.loads(text, parse_constant=_Constant)
    except json.JSONDecodeError as err:
        raise KernelError(
            f"kernel {source} is not valid JSON (line {err.lineno}: {err.msg}); "
            "give a nested list like [[1,0,-1],[1,0,-1],[1,0,-1]]"
        ) from None
    except (RecursionError, ValueError):  # a --limit nesting raised past Python's own depth
        raise KernelError(
            f"kernel {source} nests brackets too deep to read; give a nested list like "
            "[[1,0,-1],[1,0,-1],[1,0,-1]]"
        ) from None
    return _from_nested(data, source)


def _check_array(arr: npt.NDArray[Any], source: str) -> Array:
    if arr.dtype.kind not in "biuf":
        raise KernelError(f"kernel {source} has dtype {_cut(str(arr.dtype), 60)}; give numbers")
    if arr.ndim not in (2, 3, 4):
        raise KernelError(
            f"kernel {source} has shape {tuple(arr.shape)}; give 2-D (kh×kw), 3-D (C_in×kh×kw) "
            "or 4-D (C_out×C_in×kh×kw)"
        )
    if arr.size == 0:
        raise KernelError(f"kernel {source} is empty (shape {tuple(arr.shape)})")
    out = arr.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = np.argwhere(~(np.abs(out) <= F32_MAX))
    if len(bad):
        idx = tuple(int(i) for i in bad[0])
        value = out[idx]
        if not math.isfinite(value):
            raise KernelError(
                f"kernel {source} at index {list(idx)} is {value}; kernels need finite numbers"
            )
        raise KernelError(
            f"kernel {source} at index {list(idx)} is {value:.7g}, outside {_F32_RANGE}"
        )
    return out


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _not_regular(source: str, mode: int) -> KernelError:
    kind = _file_kind(mode)
    return KernelError(
        f"kernel {source} is {kind}{', not a regular file' if kind.startswith('a ') else ''}; "
        "give a .txt, .csv, .json or .npy file"
    )


def _open_regular(path: Path, source: str) -> tuple[BinaryIO, int]:
    """Open a regular file for reading, and its size; anything else (a directory, a FIFO, a
    device) is refused from its fstat, and O_NONBLOCK keeps a FIFO from hanging the open."""
    from cnncli.outputs import describe_os_error

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise KernelError(f"cannot read kernel {source}: {describe_os_error(err)}") from None
    except ValueError:  # an embedded NUL
        raise KernelError(f"cannot read kernel {source}: a file name cannot hold NUL") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(source, info.st_mode)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _read_text(fh: BinaryIO, size: int, source: str) -> bytes:
    limit = limits.get("file-bytes")
    limits.check("file-bytes", size, f"kernel {source} has {size:,} bytes")
    raw = fh.read(limit + 1)  # the size may lie (a growing file, /proc): stop at the limit anyway
    limits.check("file-bytes", len(raw), f"kernel {source} has more than {limit:,} bytes")
    return raw


def _load_npy(fh: BinaryIO, source: str) -> Array:
    """A .npy kernel, its header checked (magic, version, dtype, shape, taps) before any data is
    read; object arrays are refused from the header and never unpickled."""
    head = fh.read(8)
    if not head:
        raise KernelError(f"kernel {source} is empty (0 bytes), not a .npy array; {_NPY_FIX}")
    if head.startswith(b"PK"):
        raise KernelError(
            f"kernel {source} is a .npz archive, not a .npy array; save one of its arrays "
            "with numpy.save"
        )
    try:
        shape, fortran, dtype = read_header(fh)
    except NpyHeaderError as err:
        if err.version is not None:  # 3.0 exists for structured (named-field) dtypes only
            raise KernelError(
                f"kernel {source} is a .npy file of format version {err.version[0]}."
                f"{err.version[1]}, which holds no plain numbers; {_NPY_FIX}"
            ) from None
        if isinstance(err.cause, (ValueError, EOFError)):  # numpy's own words
            raise KernelError(
                f"kernel {source} is not a .npy array or is truncated ({_cut(str(err.cause))}); "
                f"{_NPY_FIX}"
            ) from None
        raise KernelError(
            f"kernel {source} is not a .npy array (its header cannot be parsed); {_NPY_FIX}"
        ) from None
    if any(n < 0 for n in shape):  # numpy's header check lets these through
        raise KernelError(
            f"kernel {source} is not a .npy array (its header gives shape {shape}); {_NPY_FIX}"
        )
    if dtype.hasobject:
        raise KernelError(
            f"kernel {source} holds Python objects (dtype {_cut(str(dtype), 60)}), which are "
            "never unpickled; give numbers"
        )
    if dtype.kind not in "biuf":
        raise KernelError(f"kernel {source} has dtype {_cut(str(dtype), 60)}; give numbers")
    if len(shape) not in (2, 3, 4):
        raise KernelError(
            f"kernel {source} has shape {shape}; give 2-D (kh×kw), 3-D (C_in×kh×kw) "
            "or 4-D (C_out×C_in×kh×kw)"
        )
    if 0 in shape:
        raise KernelError(f"kernel {source} is empty (shape {shape})")
    _check_taps(shape, source)
    nbytes = math.prod(shape) * dtype.itemsize
    data = fh.read(nbytes)
    if len(data) < nbytes:
        raise KernelError(
            f"kernel {source} is truncated: its header promises shape {shape} of {dtype} "
            f"({nbytes:,} bytes) but {len(data):,} bytes follow; {_NPY_FIX}"
        )
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return _check_array(arr, source)


def load_file(path: Path) -> Array:
    """A kernel from ``.txt``/``.csv`` rows, a ``.json`` nested list, or a ``.npy`` array.

    Only regular files are read; text files pass the ``file-bytes`` limit and every format the
    ``kernel-taps`` limit before their values are built.
    """
    from cnncli.outputs import describe_os_error

    ext = path.suffix.lower()
    source = f"file {_quote(str(path))}"
    fh, size = _open_regular(path, source)
    with fh:
        try:
            if ext == ".npy":
                return _load_npy(fh, source)
            raw = _read_text(fh, size, source)
        except OSError as err:
            raise KernelError(f"cannot read kernel {source}: {describe_os_error(err)}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise KernelError(f"kernel {source} is not text; give rows of numbers") from None
    if ext == ".json":
        return _load_json(raw, text, source)
    return parse_rows(text, source)


def _looks_like_path(spec: str) -> bool:
    return bool(
        os.sep in spec or "/" in spec or re.search(r"\.(txt|csv|json|npy|tsv)$", spec, re.I)
    )


def _probe(path: Path) -> tuple[os.stat_result | None, str | None]:
    """What is at ``path``: its stat, or None and why not (no reason when simply missing).
    Never raises: a spec too long to be a file name (ENAMETOOLONG) may be an inline matrix."""
    from cnncli.outputs import describe_os_error

    try:
        return os.stat(path), None
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as err:
        return None, describe_os_error(err)
    except ValueError:  # an embedded NUL: no file has that name
        return None, "a file name cannot hold NUL"


def _custom_mapping(arr: Array) -> Mapping:
    # Zero-sum kernels detect change (edges), so their sign matters less than their size.
    return (
        Mapping.ABS
        if abs(float(arr.sum())) < 1e-9 * max(1.0, float(np.abs(arr).sum()))
        else Mapping.CLIP
    )


def resolve_kernel(spec: str) -> Kernel:
    """Turn a ``-k`` value into a :class:`Kernel`: an existing file, an inline matrix, or a name.

    A regular file of that name wins; otherwise a spec made of numbers is an inline matrix
    (however long: it is never opened), a spec that looks like a path is a missing or unreadable
    file, and anything else is a kernel name.
    """
    text = spec.strip()
    if not text:
        raise KernelSpecError(
            "kernel '' is empty; give a name (e.g. sobel) or a matrix like \"1,0,-1\""
        )
    path = Path(os.path.expanduser(text))
    found, problem = _probe(path)
    if found is not None and stat.S_ISREG(found.st_mode):
        arr = load_file(path)
        return Kernel(
            str(path),
            _safe(path.stem),
            (arr,),
            Combine.SINGLE,
            _custom_mapping(arr),
            f"from {path.name}",
        )
    if _INLINE.match(text) and (re.search(r"[0-9]", text) or not re.search(r"[A-Za-z]", text)):
        arr = parse_rows(text, _quote(text), KernelSpecError)
        return Kernel(
            "custom", "custom", (arr,), Combine.SINGLE, _custom_mapping(arr), "inline matrix"
        )
    if _looks_like_path(text):
        source = f"file {_quote(text)}"
        if found is not None:
            raise _not_regular(source, found.st_mode)
        if problem is not None:
            raise KernelError(f"cannot read kernel {source}: {problem}")
        raise KernelError(f"kernel {source} not found; check the path, or give a kernel name")
    return named(text)


def _safe(stem: str) -> str:
    return (re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "kernel")[:_MAX_SLUG]


def normalized(kernel: Kernel) -> tuple[Kernel, str | None]:
    """Divide each weight array by its sum; returns the kernel and a warning for zero sums."""
    out: list[Array] = []
    zero = False
    for w in kernel.weights:
        # Sum over the spatial (and input-channel) axes of each output map.
        axes = tuple(range(1, w.ndim)) if w.ndim == 4 else None
        total = w.sum(axis=axes, keepdims=True) if axes else np.array(w.sum())
        scale = np.abs(w).sum(axis=axes, keepdims=True) if axes else np.array(np.abs(w).sum())
        is_zero = np.abs(total) <= 1e-12 * np.maximum(scale, 1.0)
        zero = zero or bool(np.any(is_zero))
        out.append(np.where(is_zero, w, w / np.where(is_zero, 1.0, total)))
    warning = (
        f"kernel {kernel.name!r} sums to 0, so --normalize left it unchanged "
        "(zero-sum kernels detect edges; their result is centred on 0)"
        if zero
        else None
    )
    return (
        Kernel(
            kernel.name,
            kernel.slug,
            tuple(out),
            kernel.combine,
            kernel.mapping,
            kernel.description,
            kernel.params,
            kernel.value_range,
        ),
        warning,
    )
