"""The arithmetic core: a table of known answers, Dumoulin & Visin's relationships, framework refusals."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnncli import arithmetic as ar
from cnncli.errors import CnnCliError, ShapeError, UsageError, as_model_key


def out(n: list[int], k: int | list[int], **kw: object) -> tuple[int, ...]:
    return ar.resolve(ar.make_spec(n, k, **kw)).output_size  # type: ignore[arg-type]


def pads(n: list[int], k: int | list[int], **kw: object) -> tuple[tuple[int, int], ...]:
    return ar.resolve(ar.make_spec(n, k, **kw)).padding  # type: ignore[arg-type]


# The cases the issue names: each must hold.
@pytest.mark.parametrize(
    ("n", "k", "kw", "expected", "padding"),
    [
        ([6], 3, dict(stride=2, op="maxpool", ceil_mode=True), (3,), ((0, 0),)),
        ([32], 1, dict(stride=2, op="maxpool", ceil_mode=True), (16,), ((0, 0),)),
        ([5], 2, dict(stride=2, padding=1, op="maxpool", ceil_mode=True), (3,), ((1, 1),)),
        ([112], 3, dict(stride=2, op="maxpool", ceil_mode=True), (56,), ((0, 0),)),
        ([7], 3, dict(dilation=2), (3,), ((0, 0),)),
        ([7], 4, dict(padding="same"), (7,), ((1, 2),)),
        ([7], 4, dict(stride=2, padding="same", framework="tf"), (4,), ((1, 2),)),
        ([4], 3, dict(stride=2, padding=1, output_padding=1, op="convtranspose"), (8,), ((1, 1),)),
        ([4], 3, dict(stride=2, padding=1, op="convtranspose"), (7,), ((1, 1),)),
        (
            [4],
            3,
            dict(stride=2, padding="valid", op="convtranspose", framework="keras"),
            (9,),
            ((0, 0),),
        ),
        ([7], 5, dict(padding="full"), (11,), ((4, 4),)),
        ([7], 5, dict(padding="valid"), (3,), ((0, 0),)),
        # The course notes' seed: 6×6 through 3×3, no padding → 4×4.
        ([6, 6], 3, {}, (4, 4), ((0, 0), (0, 0))),
        # ResNet stem and its max pool.
        ([224, 224], 7, dict(stride=2, padding=3), (112, 112), ((3, 3), (3, 3))),
        ([112, 112], 3, dict(stride=2, padding=1, op="maxpool"), (56, 56), ((1, 1), (1, 1))),
        # Keras: valid and same with stride; causal.
        ([28, 28], 3, dict(framework="keras"), (26, 26), ((0, 0), (0, 0))),
        (
            [28, 28],
            3,
            dict(stride=2, padding="same", framework="keras"),
            (14, 14),
            ((0, 1), (0, 1)),
        ),
        ([10], 3, dict(padding="causal", dilation=2, framework="keras"), (10,), ((4, 0),)),
        ([26, 26], 2, dict(op="maxpool", framework="keras"), (13, 13), ((0, 0), (0, 0))),
        # Keras transposed: same → n·s; with output padding.
        (
            [4],
            3,
            dict(stride=2, padding="same", op="convtranspose", framework="keras"),
            (8,),
            ((0, 1),),
        ),
        (
            [4],
            1,
            dict(stride=3, padding="valid", op="convtranspose", framework="keras"),
            (12,),
            ((0, 0),),
        ),
        (
            [4],
            3,
            dict(stride=2, padding="same", output_padding=0, op="convtranspose", framework="keras"),
            (7,),
            ((1, 1),),
        ),
        # Per-axis kernel, stride, asymmetric padding.
        (
            [10, 20],
            [5, 3],
            dict(stride=[1, 2], padding=[(0, 1), (2, 2)]),
            (7, 11),
            ((0, 1), (2, 2)),
        ),
        # 3-D.
        ([16, 112, 112], 3, dict(stride=[1, 2, 2], padding=1), (16, 56, 56), ((1, 1),) * 3),
        # TF VALID with stride rounds down like torch.
        ([7], 3, dict(stride=3, framework="tf"), (2,), ((0, 0),)),
    ],
)
def test_known_cases(n, k, kw, expected, padding):  # type: ignore[no-untyped-def]
    geom = ar.resolve(ar.make_spec(n, k, **kw))
    assert geom.output_size == expected
    assert geom.padding == padding


def test_transposed_reports_output_padding_for_keras_valid_with_large_stride() -> None:
    geom = ar.resolve(ar.make_spec([4], 1, stride=3, op="convtranspose", framework="keras"))
    assert geom.axes[0].output_padding == 2  # 4·3 = (4−1)·3 + 1 + 2


# ----- Dumoulin & Visin, "A guide to convolution arithmetic", relationships 1-14 and pooling -----

sizes = st.integers(1, 40)
kernels = st.integers(1, 7)
strides = st.integers(1, 5)


@given(i=sizes, k=kernels)
def test_rel1_no_padding_unit_stride(i: int, k: int) -> None:
    if k <= i:
        assert out([i], k) == (i - k + 1,)


@given(i=sizes, k=kernels, p=st.integers(0, 5))
def test_rel2_padding_unit_stride(i: int, k: int, p: int) -> None:
    if k <= i + 2 * p:
        assert out([i], k, padding=p) == (i - k + 2 * p + 1,)


@given(i=sizes, half=st.integers(0, 3))
def test_rel3_half_padding(i: int, half: int) -> None:
    k = 2 * half + 1
    assert out([i], k, padding=half) == (i,)
    assert out([i], k, padding="same") == (i,)


@given(i=sizes, k=kernels)
def test_rel4_full_padding(i: int, k: int) -> None:
    assert out([i], k, padding=k - 1) == (i + k - 1,)
    assert out([i], k, padding="full") == (i + k - 1,)


@given(i=sizes, k=kernels, s=strides, p=st.integers(0, 4))
def test_rel5_6_strided(i: int, k: int, s: int, p: int) -> None:
    if k <= i + 2 * p:
        assert out([i], k, stride=s, padding=p) == ((i + 2 * p - k) // s + 1,)


@given(i=sizes, k=kernels, s=strides, p=st.integers(0, 4), d=st.integers(1, 4))
def test_rel15_dilated(i: int, k: int, s: int, p: int, d: int) -> None:
    if k + (k - 1) * (d - 1) <= i + 2 * p:
        assert out([i], k, stride=s, padding=p, dilation=d) == (
            (i + 2 * p - k - (k - 1) * (d - 1)) // s + 1,
        )


@given(i=sizes, k=kernels, s=strides)
def test_pooling_relationship(i: int, k: int, s: int) -> None:
    if k <= i:
        assert out([i], k, stride=s, op="maxpool") == ((i - k) // s + 1,)
        assert out([i], k, stride=s, op="avgpool") == ((i - k) // s + 1,)


@given(i=sizes, k=kernels, s=strides, p=st.integers(0, 4))
def test_rel8_to_14_transposed_inverts_the_convolution(i: int, k: int, s: int, p: int) -> None:
    # The transposed convolution of a conv (k, s, p) maps its output size o back to i, with
    # output padding a = (i + 2p − k) mod s (relationship 14; 8-13 are its special cases).
    if k > i + 2 * p:
        return
    (o,) = out([i], k, stride=s, padding=p)
    a = (i + 2 * p - k) % s
    if a >= s:
        return
    t = ar.resolve(ar.make_spec([o], k, stride=s, padding=p, op="convtranspose", output_padding=a))
    assert t.output_size == (i,)
    assert t.output_size == (s * (o - 1) + a + k - 2 * p,)


# ----- refusals -----


@pytest.mark.parametrize(
    ("n", "k", "kw", "error", "message"),
    [
        (
            [7],
            3,
            dict(stride=2, padding="same"),
            ShapeError,
            "PyTorch refuses padding='same' with stride 2",
        ),
        (
            [7],
            3,
            dict(stride=2, dilation=2, framework="keras"),
            ShapeError,
            "Keras refuses stride > 1 together with dilation > 1",
        ),
        (
            [7, 7],
            3,
            dict(padding="causal", framework="keras"),
            ShapeError,
            "causal padding exists only for 1-D inputs",
        ),
        (
            [7],
            3,
            dict(padding=2, op="maxpool"),
            ShapeError,
            "PyTorch requires pooling padding at most half the kernel size",
        ),
        (
            [7],
            3,
            dict(padding=1, framework="keras"),
            ShapeError,
            "Keras layers take padding 'valid' or 'same' only",
        ),
        ([5], 7, {}, ShapeError, "kernel 7 is larger than the padded input 5 on axis L"),
        (
            [5],
            3,
            dict(dilation=3),
            ShapeError,
            "dilated kernel 7 (kernel 3, dilation 3) is larger than the padded input 5",
        ),
        (
            [4],
            3,
            dict(stride=2, output_padding=2, op="convtranspose"),
            ShapeError,
            "output padding 2 on axis L must be smaller",
        ),
        (
            [4],
            3,
            dict(output_padding=1),
            UsageError,
            "--output-padding applies only to --op convtranspose",
        ),
        ([4], 3, dict(ceil_mode=True), UsageError, "--ceil-mode applies only to pooling"),
        (
            [4],
            2,
            dict(op="maxpool", ceil_mode=True, framework="tf"),
            UsageError,
            "TensorFlow pooling has no ceil_mode",
        ),
        ([4], 2, dict(op="avgpool", dilation=2), UsageError, "average pooling has no dilation"),
        ([4], 0, {}, UsageError, "kernel 0 is not allowed; use a positive whole number"),
        (
            [4, 4],
            [3, 3, 3],
            {},
            UsageError,
            "kernel has 3 values but the input has 2 spatial axes (H W)",
        ),
        (
            [2**40],
            3,
            {},
            UsageError,
            "input size 1099511627776 on axis L is larger than 2147483647",
        ),
        ([4], 3, dict(padding="sideways"), UsageError, "unknown padding 'sideways'"),
        (
            [4],
            3,
            dict(padding="same", op="convtranspose"),
            ShapeError,
            "PyTorch transposed convolution takes integer padding only",
        ),
    ],
)
def test_refusals(n, k, kw, error, message):  # type: ignore[no-untyped-def]
    with pytest.raises(error) as exc:
        ar.resolve(ar.make_spec(n, k, **kw))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


# ----- coverage -----


def test_floor_drops_the_last_column() -> None:
    geom = ar.resolve(ar.make_spec([6, 7], 3, stride=2))
    assert geom.output_size == (2, 3)
    assert [a.uncovered_end for a in geom.axes] == [1, 0]


def test_stride_larger_than_kernel_leaves_gaps() -> None:
    (axis,) = ar.resolve(ar.make_spec([10], 1, stride=3)).axes
    assert axis.output == 4
    assert axis.uncovered_total == 6  # positions 1, 2, 4, 5, 7, 8


def test_dilation_holes_are_counted() -> None:
    (axis,) = ar.resolve(ar.make_spec([5], 2, dilation=4)).axes
    assert axis.output == 1
    assert axis.uncovered_total == 3


# ----- cost -----


def test_issue_cost_examples() -> None:
    g = ar.resolve(ar.make_spec([100, 100], 3, padding=1))
    assert ar.layer_cost(g, 256, 256).macs == 5_898_240_000
    g1 = ar.resolve(ar.make_spec([100, 100], 1))
    bottleneck = ar.layer_cost(g1, 256, 64).macs + ar.layer_cost(g, 64, 256).macs
    assert bottleneck == 1_638_400_000


def test_params_grouped_and_bias() -> None:
    g = ar.resolve(ar.make_spec([56, 56], 3, padding=1))
    depthwise = ar.layer_cost(g, 32, 32, groups=32)
    assert depthwise.params == 32 * 9 + 32
    assert ar.layer_cost(g, 32, 64, bias=False).params == 32 * 9 * 64
    assert ar.layer_cost(g, 3, 64).flops == 2 * ar.layer_cost(g, 3, 64).macs
    with pytest.raises(UsageError, match="in channels 30 must be divisible by groups 4"):
        ar.layer_cost(g, 30, 32, groups=4)


def test_transposed_cost_is_counted_on_the_input() -> None:
    g = ar.resolve(
        ar.make_spec([4, 4], 3, stride=2, padding=1, output_padding=1, op="convtranspose")
    )
    assert ar.layer_cost(g, 8, 4).macs == 16 * 8 * 9 * 4


# ----- solve -----


def test_solve_padding_symmetric_and_asymmetric() -> None:
    (sol,) = ar.solve_padding(ar.make_spec([32], 5), [32])
    assert sol.values == (2, 2) and sol.symmetric
    (sol,) = ar.solve_padding(ar.make_spec([7], 4), [7])
    assert sol.values == (1, 2) and not sol.symmetric
    (sol,) = ar.solve_padding(ar.make_spec([224], 7, stride=2), [112])
    assert sol.values == (3, 3)


def test_solve_transposed() -> None:
    (sol,) = ar.solve_output_padding(
        ar.make_spec([4], 3, stride=2, padding=1, op="convtranspose"), [8]
    )
    assert sol.values == (1,)
    (sol,) = ar.solve_padding(ar.make_spec([4], 4, stride=2, op="convtranspose"), [8])
    assert sol.values[:2] == (1, 1)


@given(n=sizes, k=kernels, s=strides, p=st.integers(0, 3))
def test_solve_input_is_exactly_the_preimage(n: int, k: int, s: int, p: int) -> None:
    spec = ar.make_spec([n], k, stride=s, padding=p)
    try:
        (t,) = ar.resolve(spec).output_size
    except ShapeError:
        return
    (sol,) = ar.solve_input(spec, [t])
    lo, hi = sol.values
    assert lo <= n <= hi
    for m in range(max(1, lo - 2), hi + 3):
        try:
            got = out([m], k, stride=s, padding=p)[0]
        except ShapeError:
            got = 0
        assert (got == t) == (lo <= m <= hi)


def test_explain_substitutes_the_numbers() -> None:
    text = "\n".join(ar.explain(ar.resolve(ar.make_spec([6, 6], 3))))
    assert "⌊(6 − 3) / 1⌋ + 1 = ⌊3/1⌋ + 1 = 3 + 1 = 4" in text


def test_receptive_field() -> None:
    rf = ar.Receptive().then(7, 2).then(3, 2)  # ResNet stem + max pool
    assert (rf.size, rf.jump) == (11, 4)


def test_solve_answers_every_axis_in_one_call() -> None:
    solved = ar.solve(ar.make_spec([7, 32], [4, 5]), ar.Solve.PADDING, [7, 32])
    assert solved.padding == ((1, 2), (2, 2))
    assert not solved.symmetric
    assert solved.output_padding is None
    assert solved.geometry is not None and solved.geometry.output_size == (7, 32)
    solved = ar.solve(
        ar.make_spec([4], 3, stride=2, padding=1, op="convtranspose"), "output-padding", [8]
    )
    assert (solved.target, solved.output_padding, solved.geometry) == ((8,), (1,), None)
    solved = ar.solve(ar.make_spec([4, 4], 4, stride=2, op="convtranspose"), ar.Solve.PADDING, [8])
    assert solved.padding == ((1, 1), (1, 1)) and solved.output_padding == (0, 0)
    solved = ar.solve(ar.make_spec([10], 3, stride=2), ar.Solve.INPUT, [4])
    assert solved.target == (4,) and solved.input_range == ((9, 10),)


def test_solve_checks_the_op_before_the_target() -> None:
    with pytest.raises(UsageError, match="applies only to --op convtranspose"):
        ar.solve(ar.make_spec([4, 4], 3), ar.Solve.OUTPUT_PADDING, [1, 2, 3])


def test_analyze_counts_cost_only_with_channels() -> None:
    spec = ar.make_spec([224, 224], 7, stride=2, padding=3)
    assert ar.analyze(spec).cost is None
    cost = ar.analyze(spec, 3, 64, bias=False).cost
    assert cost is not None and (cost.params, cost.groups) == (9408, 1)
    with pytest.raises(UsageError, match="--out-channels and --groups need --in-channels"):
        ar.analyze(spec, out_channels=64)


@given(n=sizes, k=kernels, s=strides, d=st.integers(1, 3))
def test_same_padding_is_the_tf_rule(n: int, k: int, s: int, d: int) -> None:
    before, after = ar.same_padding(n, k, s, d)
    assert after - before in (0, 1)
    keff = ar.effective_kernel(k, d)
    assert ar.forward_size(n, keff, s, before, after) == -(-n // s)  # ⌈n/s⌉
    if s == 1 or d == 1:
        assert pads([n], k, stride=s, dilation=d, padding="same", framework="tf") == (
            (before, after),
        )


# ----- messages name options, not flags: the reader decides the words -----


@pytest.mark.parametrize(
    ("make", "flag_words", "key_words"),
    [
        (
            lambda: ar.resolve(ar.make_spec([9], 3, stride=2, dilation=2, framework="keras")),
            "use stride 1 or dilation 1, or --framework torch",
            "use stride 1 or dilation 1, or framework: torch",
        ),
        (
            lambda: ar.resolve(ar.make_spec([9], 3, padding=2, op="maxpool")),
            "use --padding 1 or less",
            "use padding: 1 or less",
        ),
        (
            lambda: ar.resolve(
                ar.make_spec([9], 3, stride=2, output_padding=2, op="convtranspose")
            ),
            "use --output-padding 1 or less",
            "use output_padding: 1 or less",
        ),
        (
            lambda: ar.make_spec([9], 3, dilation=2, op="avgpool"),
            "average pooling has no dilation in any framework; drop --dilation",
            "average pooling has no dilation in any framework; drop dilation:",
        ),
        (
            lambda: ar.make_spec([9], 3, ceil_mode=True, op="maxpool", framework="keras"),
            "use --padding same, or --framework torch",
            "use padding: same, or framework: torch",
        ),
    ],
)
def test_messages_read_right_as_flags_and_as_model_keys(
    make: Callable[[], object], flag_words: str, key_words: str
) -> None:
    with pytest.raises(CnnCliError) as info:
        make()
    assert flag_words in str(info.value)
    assert key_words in info.value.worded(as_model_key)
    assert "--" not in info.value.worded(as_model_key)


def test_core_messages_carry_no_flags() -> None:
    # Every option named in arithmetic's messages is an {opt:NAME} token (see errors.py).
    source = Path(ar.__file__).read_text(encoding="utf-8")
    assert re.findall(r"--[a-z]", source) == []


def test_tf_transposed_explicit_padding_is_applied_in_2d_and_refused_elsewhere() -> None:
    # tf.nn.conv2d_transpose crops explicit padding from the output length Keras computes
    # ((n−1)·s + max(k', s) = 11 here); conv1d/conv3d_transpose take no explicit padding.
    geom = ar.resolve(ar.make_spec([9, 9], [3], padding=1, op="convtranspose", framework="tf"))
    assert geom.output_size == (9, 9)
    assert geom.padding == ((1, 1), (1, 1))
    for size in ([9], [9, 9, 9]):
        spec = ar.make_spec(size, [3], padding=1, op="convtranspose", framework="tf")
        with pytest.raises(ShapeError, match=r"conv[13]d_transpose takes padding 'VALID' or"):
            ar.resolve(spec)
    for padding in ("valid", "same", 0):
        ar.resolve(ar.make_spec([9], [3], padding=padding, op="convtranspose", framework="tf"))


def test_solve_output_padding_follows_each_framework() -> None:
    # Keras same: (n−1)·s + k' mod 2 + op; an even kernel needs op ≥ 1 (TensorFlow's SAME
    # convolution of (n−1)·s gives n−1), and Keras wants op < s.
    spec = ar.make_spec([4], 4, stride=2, padding="same", op="convtranspose", framework="keras")
    assert ar.solve_output_padding(spec, [7])[0].values == (1,)
    with pytest.raises(ShapeError, match="Size of out_backprop doesn't match computed"):
        ar.solve_output_padding(spec, [6])
    with pytest.raises(ShapeError, match="must be smaller than the stride"):
        ar.solve_output_padding(spec, [8])
    # tf.nn.conv1d_transpose takes any output length whose SAME convolution gives n: 8 = n·s.
    tf_spec = ar.make_spec([4], 4, stride=2, padding="same", op="convtranspose", framework="tf")
    assert ar.solve_output_padding(tf_spec, [8])[0].values == (2,)
    assert ar.resolve(replace(tf_spec, output_padding=(2,))).output_size == (8,)


def test_solve_keeps_the_ops_dimensions_for_tensorflow() -> None:
    # Each axis is solved alone but as the same op: tf.nn.conv2d takes explicit padding,
    # tf.nn.conv1d/conv3d none, so a 2-D layer has a padding answer and the others refuse.
    solved = ar.solve(ar.make_spec([7, 7], 3, framework="tf"), ar.Solve.PADDING, [7])
    assert solved.padding == ((1, 1), (1, 1))
    solved = ar.solve(
        ar.make_spec([4, 4], 4, stride=2, op="convtranspose", framework="tf"), "padding", [8]
    )
    assert solved.geometry is not None and solved.geometry.output_size == (8, 8)
    for size in ([7], [7, 7, 7]):
        with pytest.raises(ShapeError, match=r"tf.nn.conv[13]d takes no explicit padding"):
            ar.solve(ar.make_spec(size, 3, framework="tf"), ar.Solve.PADDING, [7])
    spec = ar.make_spec([7, 7], 3, padding=[(1, 1), (0, 0)], framework="tf")
    assert ar.solve(spec, ar.Solve.INPUT, [7]).input_range == ((7, 7), (9, 9))
