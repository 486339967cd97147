"""Every classification CNN of torchvision.models is in the zoo, with torchvision's numbers.

``tests/data/torchvision_zoo.json`` holds, per model, what torchvision 0.29.1 publishes
(``num_params`` and GFLOPS of the DEFAULT weights, at their crop size) and what the real model
measures (batchnorm buffers, conv + linear MACs exactly, output shape). The oracle tests rebuild
every entry from torchvision itself, so the file cannot drift from the real system; the other
tests compare the zoo with it, and run without torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tv_oracle import cnn_names, measure, mismatches, published  # tests/tv_oracle.py

from cnncli.model import summarize, zoo_names

TABLE: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "torchvision_zoo.json").read_text()
)


def test_every_torchvision_cnn_is_in_the_zoo() -> None:
    assert sorted(set(TABLE) - set(zoo_names())) == []


@pytest.mark.parametrize("name", sorted(TABLE))
def test_totals_equal_torchvision(name: str) -> None:
    want = TABLE[name]
    s = summarize(name)
    t = s.totals
    assert list(s.inputs.values()) == [tuple(want["input"])]
    assert (t.trainable_params, t.non_trainable_params, t.macs) == (
        want["trainable"],
        want["non_trainable"],
        want["macs"],
    )
    assert t.trainable_params == want["num_params"]
    assert f"{t.macs / 1e9:.3f}" == f"{want['gflops']:.3f}"
    assert list(s.outputs.values())[-1] == tuple(want["output"])


@pytest.mark.oracle
def test_table_is_what_torchvision_says() -> None:
    assert sorted(TABLE) == sorted(cnn_names())
    for name, want in TABLE.items():
        p = published(name)
        assert (p.num_params, p.gflops, [3, p.size, p.size]) == (
            want["num_params"],
            want["gflops"],
            want["input"],
        ), name


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(TABLE))
def test_layer_by_layer_against_torchvision(name: str) -> None:
    measured = measure(name, TABLE[name]["input"][-1])
    assert mismatches(name, summarize(name), measured) == []
