"""TensorFlow 2.21 ``tf.nn`` ops and Keras 3 layers as the oracle for ``cnncli shape``.

TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, at import, and some of its CPU answers depend on
it (oneDNN runs dilated Conv3D and dilated transposed convolutions that the plain kernels refuse;
a VALID window one past the input gives an empty output without oneDNN, the input size with it;
max pooling to an empty output kills the process with SIGFPE under oneDNN). So the oracle runs
in worker processes, one per setting, started with the setting fixed: the test process never
imports TensorFlow, and a worker that dies is replaced and the case recorded as a crash.

A case is a plain dict (JSON between the processes)::

    {"api": "tf" | "keras", "op": "conv" | "convtranspose" | "maxpool" | "avgpool"
                                  | "depthwise" | "separable",
     "size": [..], "kernel": [..], "stride": [..], "dilation": [..],
     "padding": "valid" | "same" | "causal" | "full" | [[before, after], ..],
     "output_padding": [..] | None,
     "claim": {"padding": [[before, after], ..]} | None}

and the answer ``{"shape": [..]}`` (spatial output shape, possibly with a 0), ``{"error": "…"}``
or ``{"crash": "…"}``; with a ``claim`` and a non-empty shape also ``"placement": true/false``:
whether the output equals a plain NumPy computation of the same layer on the same probe input
with the claimed padding (transposed: crop) before each axis. The probe input and kernel are
distinct-ish integers, so a window shifted by one gives other numbers.

What the ops are: ``tf`` is ``tf.nn.conv1d/conv2d/conv3d``, ``tf.nn.conv{1,2,3}d_transpose``
given the output shape Keras's ``compute_conv_transpose_output_shape`` computes (minus explicit
padding, which only ``conv2d_transpose`` takes), ``tf.nn.max_pool{1,2,3}d`` and
``tf.nn.avg_pool{1,2,3}d``, ``tf.nn.depthwise_conv2d`` (1-D through an added axis, as Keras does);
``keras`` is ``keras.layers.Conv*D``, ``Conv*DTranspose``, ``MaxPooling*D``,
``AveragePooling*D``, ``DepthwiseConv*D``, ``SeparableConv*D`` on the TensorFlow backend, called
eagerly on a (1, *size, 1) input. Named padding modes go to TensorFlow as their upper-case
names; ``full`` is explicit padding d·(k−1) on both sides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKER_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "KERAS_BACKEND": "tensorflow",
    "CUDA_VISIBLE_DEVICES": "",
    "PYTHONHASHSEED": "0",
    # One thread each: the machine is shared, and the answers do not depend on it.
    "OMP_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


# ------------------------------------------------------------------------------------------------
# The test side: workers, one per oneDNN setting
# ------------------------------------------------------------------------------------------------


class Worker:
    """One oracle process with ``TF_ENABLE_ONEDNN_OPTS`` fixed; answers cases one line each."""

    def __init__(self, onednn: bool) -> None:
        self.onednn = onednn
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = {**os.environ, **WORKER_ENV, "TF_ENABLE_ONEDNN_OPTS": "1" if self.onednn else "0"}
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )

    def start(self) -> None:
        """Start the process now (importing TensorFlow takes seconds; start both early)."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()

    def send(self, case: dict[str, Any]) -> None:
        """Hand one case to the process (answers come back in order, see :meth:`receive`)."""
        self.start()
        assert self.proc is not None and self.proc.stdin
        try:
            self.proc.stdin.write(json.dumps(case) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # receive() reports the dead process

    def receive(self) -> dict[str, Any]:
        """The answer to the case sent; a dead process is reported and replaced next time."""
        assert self.proc is not None and self.proc.stdout
        line = self.proc.stdout.readline()
        if line:
            answer: dict[str, Any] = json.loads(line)
            return answer
        code = self.proc.wait()
        self.proc = None
        return {"crash": f"the TensorFlow process died (exit status {code})"}

    def ask(self, case: dict[str, Any]) -> dict[str, Any]:
        """TensorFlow's answer to one case."""
        self.send(case)
        return self.receive()

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=60)
            self.proc = None


class Oracle:
    """TensorFlow without and with oneDNN, side by side."""

    def __init__(self) -> None:
        self.plain = Worker(onednn=False)
        self.onednn = Worker(onednn=True)
        self.plain.start()
        self.onednn.start()

    def ask(self, case: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(answer without oneDNN, answer with oneDNN), both processes working at once."""
        self.plain.send(case)
        self.onednn.send(case)
        return self.plain.receive(), self.onednn.receive()

    def close(self) -> None:
        self.plain.close()
        self.onednn.close()


# ------------------------------------------------------------------------------------------------
# The worker side: TensorFlow and Keras calls, and the NumPy reference for the placement
# ------------------------------------------------------------------------------------------------


def _explicit(case: dict[str, Any]) -> list[list[int]] | None:
    """Explicit (before, after) pairs of the case, ``full`` included; None for a mode (and for
    padding 0 on every side, which is 'valid' in cnncli's words for TensorFlow and Keras)."""
    pad = case["padding"]
    if pad == "full":
        pad = [[d * (k - 1)] * 2 for k, d in zip(case["kernel"], case["dilation"], strict=True)]
    if isinstance(pad, str) or not any(b or a for b, a in pad):
        return None
    return [list(p) for p in pad]


def _mode(case: dict[str, Any]) -> str:
    """The padding mode of a case without explicit padding."""
    pad = case["padding"]
    return pad if isinstance(pad, str) and pad != "full" else "valid"


def _probe(case: dict[str, Any]) -> tuple[Any, Any]:
    """The probe input (1, *size, 1) and kernel (*kernel,), integer-valued float32: every sum
    is exact, and the input values are distinct, so max pooling shows which window it took."""
    import numpy as np

    rng = np.random.default_rng(20_260_213)
    size = case["size"]
    count = int(np.prod(size))
    x = (rng.permutation(count) - count // 2).astype(np.float32).reshape(size)
    if case["op"] not in ("maxpool", "avgpool"):
        x = rng.integers(-50, 51, size=size).astype(np.float32)
    w = rng.integers(-50, 51, size=case["kernel"]).astype(np.float32)
    return x, w


def _tf_transposed_length(case: dict[str, Any]) -> list[int]:
    """The output shape given to tf.nn.conv*_transpose: Keras's rule, minus explicit padding."""
    from keras.src.backend.common.backend_utils import compute_conv_transpose_output_shape

    pairs = _explicit(case)
    mode = "valid" if pairs is not None else _mode(case)
    ndim = len(case["size"])
    shape = compute_conv_transpose_output_shape(
        [1, *case["size"], 1],
        case["kernel"],
        1,
        case["stride"],
        mode,
        case["output_padding"],
        "channels_last",
        case["dilation"],
    )
    lengths = [int(v) for v in shape[1:-1]]
    if pairs is not None:
        lengths = [m - b - a for m, (b, a) in zip(lengths, pairs, strict=True)]
    assert len(lengths) == ndim
    return lengths


def _tf_padding(case: dict[str, Any]) -> Any:
    pairs = _explicit(case)
    if pairs is None:
        return _mode(case).upper()
    return [[0, 0], *pairs, [0, 0]]


def _run_tf(case: dict[str, Any], x: Any, w: Any) -> Any:
    import tensorflow as tf

    ndim, op = len(case["size"]), case["op"]
    inp = tf.constant(x.reshape(1, *case["size"], 1))
    kernel = tf.constant(w.reshape(*case["kernel"], 1, 1))
    stride, dil, pad = case["stride"], case["dilation"], _tf_padding(case)
    if op == "conv":
        if ndim == 3:
            return tf.nn.conv3d(inp, kernel, [1, *stride, 1], pad, dilations=[1, *dil, 1])
        fn = tf.nn.conv1d if ndim == 1 else tf.nn.conv2d
        return fn(inp, kernel, stride, pad, dilations=dil)
    if op == "convtranspose":
        fn = [tf.nn.conv1d_transpose, tf.nn.conv2d_transpose, tf.nn.conv3d_transpose][ndim - 1]
        out_shape = [1, *_tf_transposed_length(case), 1]
        return fn(inp, kernel, out_shape, stride, pad, dilations=dil)
    if op in ("maxpool", "avgpool"):
        fn = getattr(tf.nn, f"{'max' if op == 'maxpool' else 'avg'}_pool{ndim}d")
        return fn(inp, case["kernel"], stride, pad)
    if op == "depthwise":
        if ndim == 1:
            inp, kernel = tf.expand_dims(inp, 1), tf.expand_dims(kernel, 0)
            stride, dil = [1, *stride], [1, *dil]
            if isinstance(pad, list):
                pad = [[0, 0], [0, 0], *pad[1:]]
        y = tf.nn.depthwise_conv2d(inp, kernel, [1, *stride, 1], pad, dilations=dil)
        return tf.squeeze(y, 1) if ndim == 1 else y
    raise ValueError(f"tf has no op {op!r} in this oracle")


def _keras_layer(case: dict[str, Any]) -> Any:
    import keras

    ndim, op = len(case["size"]), case["op"]
    pairs = _explicit(case)
    # Keras layers take a mode; the oracle hands them explicit pairs and lets Keras refuse them.
    pad: Any = _mode(case) if pairs is None else [tuple(p) for p in pairs]
    common = dict(strides=case["stride"], padding=pad)
    if op == "conv":
        return getattr(keras.layers, f"Conv{ndim}D")(
            1, case["kernel"], dilation_rate=case["dilation"], use_bias=False, **common
        )
    if op == "convtranspose":
        return getattr(keras.layers, f"Conv{ndim}DTranspose")(
            1,
            case["kernel"],
            dilation_rate=case["dilation"],
            output_padding=case["output_padding"],
            use_bias=False,
            **common,
        )
    if op in ("maxpool", "avgpool"):
        name = "MaxPooling" if op == "maxpool" else "AveragePooling"
        return getattr(keras.layers, f"{name}{ndim}D")(case["kernel"], **common)
    if op == "depthwise":
        return getattr(keras.layers, f"DepthwiseConv{ndim}D")(
            case["kernel"], dilation_rate=case["dilation"], use_bias=False, **common
        )
    if op == "separable":
        return getattr(keras.layers, f"SeparableConv{ndim}D")(
            1, case["kernel"], dilation_rate=case["dilation"], use_bias=False, **common
        )
    raise ValueError(f"keras has no op {op!r} in this oracle")


def _run_keras(case: dict[str, Any], x: Any, w: Any) -> Any:
    import numpy as np

    layer = _keras_layer(case)
    inp = x.reshape(1, *case["size"], 1)
    layer.build(inp.shape)
    weights = layer.get_weights()
    if weights:  # kernel (, pointwise kernel of ones)
        weights[0] = w.reshape(weights[0].shape)
        for i in range(1, len(weights)):
            weights[i] = np.ones_like(weights[i])
        layer.set_weights(weights)
    return layer(inp)


def _forward_reference(case: dict[str, Any], x: Any, w: Any, out: list[int], pads: Any) -> Any:
    """The layer computed tap by tap on the input padded with the claimed padding."""
    import numpy as np

    op = case["op"]
    ndim = x.ndim
    # Negative padding (TensorFlow's 3-D kernels without oneDNN) skips input positions.
    x = x[tuple(slice(max(-b, 0), x.shape[i] - max(-a, 0)) for i, (b, a) in enumerate(pads))]
    pads = [(max(b, 0), max(a, 0)) for b, a in pads]
    fill = -np.inf if op == "maxpool" else 0.0
    padded = np.pad(x.astype(np.float64), pads, constant_values=fill)
    inside = np.pad(np.ones_like(x, dtype=np.float64), pads)
    s, d = case["stride"], case["dilation"]
    for i in range(ndim):
        if (out[i] - 1) * s[i] + (case["kernel"][i] - 1) * d[i] >= padded.shape[i]:
            raise IndexError("a window runs past the padded input")
    acc = np.full(out, -np.inf if op == "maxpool" else 0.0)
    count = np.zeros(out)
    for tap in np.ndindex(*case["kernel"]):
        where = tuple(
            slice(tap[i] * d[i], tap[i] * d[i] + (out[i] - 1) * s[i] + 1, s[i]) for i in range(ndim)
        )
        if op == "maxpool":
            acc = np.maximum(acc, padded[where])
        elif op == "avgpool":
            acc += padded[where]
            count += inside[where]
        else:
            acc += padded[where] * float(w[tap])
    # TensorFlow's average leaves padding out; its windows always hold an input position.
    return acc / count if op == "avgpool" else acc


def _transposed_reference(case: dict[str, Any], x: Any, w: Any, out: list[int], pads: Any) -> Any:
    """The full transposed convolution (each input pixel scatters the kernel), then the output
    window starting at the claimed crop before each axis, zeros past the full output."""
    import numpy as np

    ndim = x.ndim
    n, k, s, d = case["size"], case["kernel"], case["stride"], case["dilation"]
    full_len = [(n[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 for i in range(ndim)]
    ext = [max(full_len[i], pads[i][0] + out[i]) for i in range(ndim)]
    full = np.zeros(ext)
    for tap in np.ndindex(*k):
        where = tuple(
            slice(tap[i] * d[i], tap[i] * d[i] + (n[i] - 1) * s[i] + 1, s[i]) for i in range(ndim)
        )
        full[where] += x.astype(np.float64) * float(w[tap])
    return full[tuple(slice(pads[i][0], pads[i][0] + out[i]) for i in range(ndim))]


def _placement(case: dict[str, Any], x: Any, w: Any, y: Any, pads: Any) -> bool:
    import numpy as np

    out = list(y.shape)
    try:
        if case["op"] == "convtranspose":
            ref = _transposed_reference(case, x, w, out, pads)
        else:
            ref = _forward_reference(case, x, w, out, pads)
    except IndexError:
        return False
    return bool(np.allclose(y, ref, rtol=1e-5, atol=1e-3))


def answer(case: dict[str, Any]) -> dict[str, Any]:
    """TensorFlow's (or Keras's) answer to one case, in this process."""
    import numpy as np

    x, w = _probe(case)
    try:
        run = _run_tf if case["api"] == "tf" else _run_keras
        y = np.asarray(run(case, x, w))
    except Exception as err:  # noqa: BLE001 - every refusal is an answer
        # Keras wraps TensorFlow's message in lines of its own: keep them all, on one line.
        text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        return {"error": f"{type(err).__name__}: {text[:1000]}"}
    y = y.reshape(y.shape[1:-1])
    result: dict[str, Any] = {"shape": list(y.shape)}
    claim = case.get("claim")
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" and case.get("claim_without_onednn"):
        claim = case["claim_without_onednn"]
    if claim is not None and y.size:
        result["placement"] = _placement(case, x, w, y, claim["padding"])
    return result


def _serve() -> None:
    """Answer one JSON case per stdin line with one JSON answer per stdout line."""
    out = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the answers
    for line in sys.stdin:
        out.write(json.dumps(answer(json.loads(line))) + "\n")
        out.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _serve()
