"""Model files: blocks, repeat, references, naming, and every error with its exact message."""

from __future__ import annotations

import os
import re
from pathlib import Path
from textwrap import dedent

import pytest

from cnncli.errors import ModelError
from cnncli.limits import LimitError
from cnncli.model import Summary, summarize, summarize_text, zoo_names
from cnncli.model.layers import LAYER_TYPES


def build(text: str) -> Summary:
    return summarize_text(dedent(text), "m.yaml")


def error(text: str) -> str:
    with pytest.raises(ModelError) as exc:
        build(text)
    message = str(exc.value)
    assert "\n" not in message
    return message


SEQ = """
input: [3, 32, 32]
layers:
  - {type: conv2d, filters: 8, kernel: 3}
  - {type: relu}
  - {type: conv2d, filters: 8, kernel: 3}
  - {type: maxpool2d, kernel: 2}
  - {type: flatten}
  - {type: dense, units: 10}
"""


def test_sequential_names_shapes_and_params() -> None:
    s = build(SEQ)
    rows = [(r.name, r.output_shape, r.params, r.macs) for r in s.layers()]
    assert rows == [
        ("conv2d", (8, 30, 30), 224, 30 * 30 * 8 * 27),
        ("relu", (8, 30, 30), 0, 0),
        ("conv2d_1", (8, 28, 28), 584, 28 * 28 * 8 * 72),
        ("maxpool2d", (8, 14, 14), 0, 0),
        ("flatten", (1568,), 0, 0),
        ("dense", (10,), 15_690, 15_680),
    ]
    assert s.layers()[2].inputs == ("relu",)
    assert s.layers()[0].line == 4


def test_count_bias_adds_one_per_bias() -> None:
    plain, biased = build(SEQ), summarize_text(dedent(SEQ), "m.yaml", count_bias=True)
    assert biased.totals.macs - plain.totals.macs == 30 * 30 * 8 + 28 * 28 * 8 + 10
    assert biased.totals.bias_macs == plain.totals.bias_macs


def test_channels_last_shows_keras_order_and_names() -> None:
    s = build(
        """
        input: [28, 28, 1]
        layout: channels_last
        layers:
          - {type: Conv2D, filters: 4, kernel_size: 3, strides: 2, padding: same}
          - {type: BatchNormalization}
          - {type: MaxPooling2D, pool_size: 2}
        """
    )
    assert [(r.name, r.output_shape) for r in s.layers()] == [
        ("conv2d", (14, 14, 4)),
        ("batch_normalization", (14, 14, 4)),
        ("max_pooling2d", (7, 7, 4)),
    ]
    assert s.framework == "keras"
    assert s.totals.non_trainable_params == 8


BLOCKS = """
input: [16, 8, 8]
blocks:
  res:
    params: {c: 16, stride: 1, project: false}
    layers:
      - {type: conv2d, name: conv, filters: $c, kernel: 3, stride: $stride, padding: 1}
      - {type: conv2d, name: proj, input: input, filters: $c, kernel: 1, stride: $stride, if: $project}
      - {type: add, input: [conv, proj]}
layers:
  - {block: res, name: stage, repeat: 3, c: 32, first: {stride: 2, project: true}}
  - {block: res, c: 32}
  - {block: res, c: $missing}
"""


def test_blocks_repeat_first_and_if() -> None:
    s = build(BLOCKS.replace("  - {block: res, c: $missing}\n", ""))
    names = [r.name for r in s.rows]
    assert names[:5] == ["stage", "stage.0", "stage.0.conv", "stage.0.proj", "stage.0.add"]
    # Later repetitions have no projection: their add reads the block input directly.
    assert "stage.1.proj" not in names
    add1 = next(r for r in s.rows if r.name == "stage.1.add")
    assert add1.inputs == ("stage.1.conv", "stage.0.add")
    assert s.layers()[0].output_shape == (32, 4, 4)
    assert [r.name for r in s.rows if r.kind == "block"] == [
        "stage",
        "stage.0",
        "stage.1",
        "stage.2",
        "res",
    ]
    stage = s.rows[0]
    inside = [r for r in s.layers() if r.name.startswith("stage.")]
    assert stage.params == sum(r.params for r in inside)
    assert stage.macs == sum(r.macs for r in inside)
    assert stage.repeat == 3


def test_unknown_parameter_in_call() -> None:
    assert error(BLOCKS) == "m.yaml:13:5: unknown parameter $missing (the file declares no params:)"


def test_expressions() -> None:
    s = build(
        """
        input: [8, 4, 4]
        blocks:
          b:
            params: {w: 8}
            layers:
              - {type: conv2d, filters: ($w + 2) * 4 // 2, kernel: 1}
        layers:
          - {block: b, w: 6}
        """
    )
    assert s.layers()[0].output_shape == (16, 4, 4)


def test_forward_reference_and_concat() -> None:
    s = build(
        """
        input: [3, 8, 8]
        layers:
          - {type: concat, name: cat, input: [a, b]}
          - {type: conv2d, name: a, input: input, filters: 2, kernel: 1}
          - {type: conv2d, name: b, input: input, filters: 5, kernel: 3, padding: 1}
        """
    )
    assert next(r for r in s.layers() if r.name == "cat").output_shape == (7, 8, 8)
    assert [r.name for r in s.layers()] == ["cat", "a", "b"]  # file order in the table


def test_multiple_named_inputs() -> None:
    s = build(
        """
        inputs: {image: [3, 8, 8], mask: [1, 8, 8]}
        layers:
          - {type: concat, input: [image, mask]}
        """
    )
    assert s.inputs == {"image": (3, 8, 8), "mask": (1, 8, 8)}
    assert s.layers()[0].output_shape == (4, 8, 8)


def test_trainable_false_moves_params() -> None:
    s = build(
        """
        input: [3, 8, 8]
        layers:
          - {type: conv2d, filters: 4, kernel: 3, trainable: false}
        """
    )
    assert (s.totals.trainable_params, s.totals.non_trainable_params) == (0, 112)


AUX = """
input: [3, 16, 16]
blocks:
  aux:
    layers:
      - {type: conv2d, name: conv, filters: 4, kernel: 1}
      - {type: flatten}
      - {type: dense, name: fc, units: 10}
layers:
  - {type: conv2d, name: stem, filters: 8, kernel: 3, padding: 1}
  - {block: aux, name: AuxLogits, training_only: true}
  - {type: conv2d, name: head_conv, input: stem, filters: 8, kernel: 3, padding: 1}
  - {type: global_avgpool, name: pool}
  - {type: dense, name: fc, units: 10}
"""


def test_training_only_branch_counts_params_not_macs() -> None:
    # Inception v3's auxiliary classifier: parameters published, no MACs at inference.
    s = build(AUX)
    rows = {r.name: r for r in s.layers()}
    aux = [r for r in s.layers() if r.name.startswith("AuxLogits.")]
    assert [r.training_only for r in aux] == [True, True, True]
    assert not rows["head_conv"].training_only
    assert rows["AuxLogits.conv"].params == 8 * 4 + 4 and rows["AuxLogits.conv"].macs == 0
    assert rows["AuxLogits.fc"].params == 4 * 16 * 16 * 10 + 10
    main = (3 * 9 * 8 + 8) + (8 * 9 * 8 + 8) + (8 * 10 + 10)
    assert s.totals.trainable_params == main + 36 + 10_250
    assert s.totals.macs == 16 * 16 * (3 * 9 * 8 + 8 * 9 * 8) + 8 * 10
    assert s.outputs == {"fc": (10,)}
    elements = 2 * 8 * 16 * 16 + 8 + 10  # stem, head_conv, pool, fc
    assert s.totals.activation_bytes == 4 * elements


def test_training_only_follows_its_inputs() -> None:
    # Marking the first layer of a branch is enough: what it feeds runs only in training too.
    text = AUX.replace(
        "{block: aux, name: AuxLogits, training_only: true}", "{block: aux, name: AuxLogits}"
    )
    text = text.replace(
        "{type: conv2d, name: conv, filters: 4, kernel: 1}",
        "{type: conv2d, name: conv, filters: 4, kernel: 1, training_only: true}",
    )
    assert [r.training_only for r in build(text).layers()] == [
        False,
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    assert build(text).totals.macs == build(AUX).totals.macs


def test_training_only_is_shown_and_exported() -> None:
    from cnncli.render.summary import TRAINING_ONLY_NOTE, to_dict, to_markdown

    s = build(AUX)
    assert to_dict(s)["layers"][1]["training_only"] is True
    assert TRAINING_ONLY_NOTE in to_dict(s)["conventions"]["notes"]
    assert "| conv | conv2d [training only] |" in to_markdown(s).replace("&nbsp;", "")
    assert TRAINING_ONLY_NOTE not in to_dict(build(SEQ))["conventions"]["notes"]


def test_training_only_must_be_a_flag() -> None:
    text = AUX.replace("training_only: true", "training_only: 3")
    assert error(text) == "m.yaml:11:5: training_only must be true or false, got 3"


# ---- errors: each one line, naming the file and line ----------------------------------------

ERRORS = [
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 8, kernel: 3\n  - {type: relu}\n",
        "m.yaml:4:5: YAML syntax error: did not find expected ',' or '}' (while parsing a flow "
        "mapping at line 3)",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: Conv2x, filters: 8, kernel: 3}\n",
        "m.yaml:3:5: unknown layer type 'Conv2x'; did you mean conv2d? (layer "
        f"types: {', '.join(sorted(LAYER_TYPES))}; see docs/model-format.md)",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 8, kernal: 3}\n",
        "m.yaml:3:5: unknown option 'kernal' for conv2d; did you mean kernel, kernel_size? "
        "(conv2d takes activation, bias, dilation, filters, groups, kernel, padding, stride)",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, kernel: 3}\n",
        "m.yaml:3:5: conv2d needs the option 'filters'",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, name: a, filters: 4, kernel: 3}\n"
        "  - {type: conv2d, name: b, filters: 8, kernel: 3, padding: 1, input: input}\n"
        "  - {type: add, input: [a, b]}\n",
        "m.yaml:5:5: layer 'add' (add): add needs equal shapes, but 'a' is (4, 6, 6) and 'b' is (8, 8, 8)",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, name: a, filters: 4, kernel: 3}\n"
        "  - {type: conv2d, name: b, filters: 8, kernel: 1, input: input}\n"
        "  - {type: concat, input: [a, b]}\n",
        "m.yaml:5:5: layer 'concat' (concat): concat needs equal sizes apart from the channels, "
        "but 'a' is (4, 6, 6) and 'b' is (8, 8, 8)",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: relu, input: nope}\n",
        "m.yaml:3:5: layer 'relu' takes input 'nope', which is not defined here",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: relu, name: a, input: c}\n  - {type: relu, name: b}\n"
        "  - {type: relu, name: c}\n",
        "m.yaml:3:5: cyclic reference: a -> b -> c -> a; a layer cannot depend on itself",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 8, kernel: 3}\n"
        "  - {type: maxpool2d, kernel: 2}\n  - {type: conv2d, filters: 8, kernel: 5}\n",
        "m.yaml:5:5: layer 'conv2d_1' (conv2d): kernel 5 is larger than the padded input 3 on axis H "
        "(input 3 + padding 0+0); use padding of at least 2 in total, or a smaller kernel",
    ),
    (
        "input: [3, 1000000000000, 8]\nlayers:\n  - {type: relu}\n",
        "m.yaml:1:8: input size 1000000000000 is larger than 2147483647; use a realistic size",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - !!python/object/apply:os.system [echo hi]\n",
        "m.yaml:3:5: the YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is refused; "
        "model files hold plain data only (no object tags)",
    ),
    (
        "input: [3, 8, 8]\ninput: [3, 8, 8]\nlayers: [{type: relu}]\n",
        "m.yaml:2:1: duplicate key 'input'; keep one",
    ),
    (
        "input: [3, 8, 8]\nlayer: [{type: relu}]\n",
        "m.yaml:1:1: unknown top-level key 'layer'; did you mean layers, layout? "
        "(keys: name, description, params, variants, input, inputs, layout, framework, blocks, layers)",
    ),
    (
        "input: [3, 8, 8]\nlayers: []\n",
        "m.yaml:1:1: the model has no layers; list them under layers: (see docs/model-format.md)",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {block: bottle}\n",
        "m.yaml:3:5: unknown block 'bottle' (the file defines no blocks:)",
    ),
    (
        "input: [3, 8, 8]\nblocks:\n  b: {params: {c: 1}, layers: [{type: relu}]}\nlayers:\n  - {block: b, d: 2}\n",
        "m.yaml:5:5: block 'b' has no parameter 'd' (parameters: c)",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: relu, name: a}\n  - {type: relu, name: a}\n",
        "m.yaml:4:5: the name 'a' is used twice; give each layer its own name",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: dense, units: 4}\n",
        "m.yaml:3:5: layer 'dense' (dense): dense on the channels-first shape (3, 8, 8) would act on "
        "the last axis, not the channels; add a flatten or global_avgpool layer first, or axis: "
        "channels to apply it to the channels at every position (nn.Linear between two permutes)",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: dense, units: 4, axis: 2}\n",
        "m.yaml:3:5: layer 'dense' (dense): dense combines the channels only, and axis 2 of "
        "(3, 8, 8) is not the channel axis; use axis: channels (or leave axis out)",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: conv1d, filters: 2, kernel: 3}\n",
        "m.yaml:3:5: layer 'conv1d' (conv1d): conv1d needs an input with 1 spatial axis (L) and "
        "channels, got (3, 8, 8); use a 2-D layer",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 4, kernel: 3, groups: 2}\n",
        "m.yaml:3:5: layer 'conv2d' (conv2d): input channels 3 must be divisible by groups 2",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 4, kernel: 3, stride: 2, padding: same}\n",
        "m.yaml:3:5: layer 'conv2d' (conv2d): PyTorch refuses padding='same' with stride 2 "
        "(\"padding='same' is not supported for strided convolutions\"); use framework: tf for "
        "TensorFlow's SAME (output ⌈n/s⌉) or explicit padding",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: relu, activation: relu}\n",
        "m.yaml:3:5: unknown option 'activation' for relu (relu takes no options)",
    ),
    (
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 4, kernel: 3, activation: relu7}\n",
        "m.yaml:3:5: unknown activation 'relu7'; did you mean relu, relu6, elu? (known: relu, relu6, "
        "leaky_relu, sigmoid, tanh, softmax, gelu, silu, hardswish, hardsigmoid, elu, selu, "
        "softplus, mish, linear)",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_error_messages(text: str, message: str) -> None:
    with pytest.raises(ModelError) as exc:
        summarize_text(text, "m.yaml")
    assert str(exc.value) == message


def test_nested_repeats_refused_before_work() -> None:
    text = dedent(
        """
        input: [3, 8, 8]
        blocks:
          inner: {layers: [{type: relu}, {type: relu}]}
          outer: {layers: [{block: inner, repeat: 10000}]}
        layers:
          - {block: outer, repeat: 10000}
        """
    )
    with pytest.raises(LimitError) as exc:
        summarize_text(text, "m.yaml")
    # Refused at the 100,001st layer, on the way - not after expanding all 2·10^8 (the count in
    # the message is the expander's own; a timing bound would only measure the machine's load).
    assert str(exc.value) == (
        "m.yaml:4:20: the model expands to at least 100,001 layers, over the layers limit of "
        "100,000; raise it with --limit layers=100001 if you mean it"
    )


def test_huge_repeat_refused_by_the_block_calls_limit() -> None:
    text = "input: [3, 8, 8]\nblocks:\n  b: {layers: [{type: relu}]}\nlayers:\n  - {block: b, repeat: 1000000000}\n"
    with pytest.raises(LimitError) as exc:
        summarize_text(text, "m.yaml")
    assert str(exc.value) == (
        "m.yaml:5:5: block 'b' repeated 1,000,000,000 times brings the model to at least "
        "1,000,000,000 block instances, over the block-calls limit of 100,000; raise it with "
        "--limit block-calls=1000000000 if you mean it"
    )


def test_block_using_itself() -> None:
    text = "input: [3, 8, 8]\nblocks:\n  b: {layers: [{block: b}]}\nlayers:\n  - {block: b}\n"
    with pytest.raises(ModelError) as exc:
        summarize_text(text, "m.yaml")
    assert str(exc.value) == "m.yaml:3:16: block 'b' uses itself (b -> b)"


def test_unknown_zoo_name_lists_the_zoo() -> None:
    with pytest.raises(ModelError) as exc:
        summarize("resnet5")
    assert str(exc.value) == (
        "unknown model 'resnet5': no such file and not in the zoo; did you mean resnet50, "
        f"resnet152, resnet34? (cnncli summary --list shows the {len(zoo_names())} zoo models)"
    )


def test_missing_file() -> None:
    with pytest.raises(ModelError, match=r"^no such file: nowhere/m\.yaml; check the path"):
        summarize("nowhere/m.yaml")


# ------------------------------------------------------------------ core messages, model words


def test_core_messages_name_options_as_model_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # arithmetic names options as {opt:NAME}; a model file reads them as its own keys
    # (test_arithmetic checks arithmetic.py spells no flag literally).
    from cnncli import arithmetic as ar
    from cnncli.errors import ShapeError

    def refuse(spec: object) -> object:
        raise ShapeError(
            "kernel 5 is larger than the padded input 3 on axis H; use {opt:padding} 1 or more, "
            "{opt:output-padding} 0 or {opt:dilation} 1; or {opt:framework} tf"
        )

    monkeypatch.setattr(ar, "resolve", refuse)
    message = error(
        """
        input: [3, 3, 3]
        layers:
          - {type: conv2d, filters: 4, kernel: 5}
        """
    )
    assert message == (
        "m.yaml:4:5: layer 'conv2d' (conv2d): kernel 5 is larger than the padded input 3 on axis "
        "H; use padding: 1 or more, output_padding: 0 or dilation: 1; or framework: tf"
    )
    assert "{opt:" not in message and "--" not in message


# ------------------------------------------------------------------ docs/model-format.md

DOC = Path(__file__).resolve().parent.parent / "docs" / "model-format.md"


def test_doc_yaml_examples_are_models() -> None:
    # Every YAML example of the format reference summarises; a fragment (blocks and a call,
    # no input:) gets the input its call expects.
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    for text in blocks:
        if not re.search(r"^inputs?:", text, re.M):
            text = "input: [256, 56, 56]\n" + text
        s = summarize_text(text, "doc.yaml")
        assert s.totals.layers > 0


ZOO_TABLE_START = "<!-- zoo table: written by tests/test_model.py from the zoo itself -->"
ZOO_TABLE_END = "<!-- end of zoo table -->"


def zoo_table() -> str:
    """The docs' zoo table, computed from every zoo model's summary."""
    from cnncli.model import zoo_entries

    lines = [
        "| model | file | input | total params | trainable | non-trainable | GMACs | description |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for entry in zoo_entries():
        s = summarize(entry.name)
        t = s.totals
        shape = "×".join(str(d) for d in next(iter(s.inputs.values())))
        lines.append(
            f"| `{entry.name}` | {entry.file} | {shape} | {t.params:,} | {t.trainable_params:,} | "
            f"{t.non_trainable_params:,} | {t.macs / 1e9:.3f} | {entry.description} |"
        )
    return "\n".join(lines)


def test_doc_zoo_table_matches_the_zoo() -> None:
    # CNNCLI_REGEN_DOCS=1 rewrites the table; the numbers themselves are checked against
    # torchvision and Keras by test_zoo_torchvision.py and test_zoo_keras.py.
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(ZOO_TABLE_START + "\n")
    _, tail = rest.split(ZOO_TABLE_END)
    want = f"{head}{ZOO_TABLE_START}\n{zoo_table()}\n{ZOO_TABLE_END}{tail}"
    if os.environ.get("CNNCLI_REGEN_DOCS") == "1":
        DOC.write_text(want, encoding="utf-8")
    assert text == want


@pytest.mark.parametrize("text", ["1e-6", "1E-6", "5e-1", "+2.5e-3", ".5e-2"])
def test_exponent_floats_are_numbers_as_in_yaml_1_2(text: str) -> None:
    from cnncli.model import load_yaml

    data = load_yaml(f"eps: {text}\nname: '1e-6'\n", "m.yaml")
    assert data["eps"] == float(text)
    assert data["name"] == "1e-6"  # quoted: text
    summary = summarize_text(
        "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 4, kernel: 3}\n"
        f"  - {{type: batchnorm, eps: {text}}}\n",
        "m.yaml",
    )
    assert (
        summary.totals.params == 3 * 4 * 9 + 4 + 4 * 4
    )  # conv + bias, BN weight, bias, running stats


@pytest.mark.parametrize("name", ["tile", "gather", "roll", "scale"])
def test_unknown_types_get_the_list_not_a_far_guess(name: str) -> None:
    message = error(f"input: [3, 8, 8]\nlayers:\n  - {{type: {name}}}\n")
    assert message == (
        f"m.yaml:3:5: unknown layer type {name!r} (layer types: "
        f"{', '.join(sorted(LAYER_TYPES))}; see docs/model-format.md)"
    )
