"""The member-variant benchmark: its overrides and the decisions log rendered from its results."""

from __future__ import annotations

import pytest

from benchmarks import members
from benchmarks.seeds import update_doc
from springtail.common.io import read_json


def test_overrides_set_section_keys_as_yaml_values():
    params = members.overridden({"train": {"seed": 0}}, ["train.ema_decay=0.995", "vit_hybrid.freeze_stride=4",
                                                        "train.patience=0"])
    assert params["train"] == {"seed": 0, "ema_decay": 0.995, "patience": 0}
    assert params["vit_hybrid"] == {"freeze_stride": 4}
    with pytest.raises(ValueError, match="SECTION.KEY=VALUE"):
        members.overridden({}, ["ema_decay=1"])


def test_render_and_update_between_the_members_markers(tmp_path):
    run = {"seed": 0, "val_macro_f1": 0.5, "public_macro_f1": 0.25}
    result = {"name": "v", "model": "vit_hybrid", "overrides": ["train.ema_decay=0.9"], "runs": [run, run | {"seed": 1}],
              "machine": {"cpu": "cpu", "cores_affinity": 2}, "commit": "abcdef0123"}
    table = members.render_table([result])
    assert "| v | `vit_hybrid` | `train.ema_decay=0.9` | 0, 1 | 0.500 (0.500, 0.500) | 0.250 (0.250, 0.250) |" in table
    page = tmp_path / "page.md"
    page.write_text(f"before\n{members.BEGIN}\nold\n{members.END}\nafter\n")
    assert update_doc(page, table, members.BEGIN, members.END)
    text = page.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text and table in text


def test_decisions_log_table_is_rendered_from_the_committed_results():
    results = sorted(members.RESULTS.glob("*.json"))
    if not results:
        pytest.skip("no member results committed yet")
    text = (members.REPO / "docs" / "decisions.md").read_text(encoding="utf-8")
    start, end = text.index(members.BEGIN) + len(members.BEGIN), text.index(members.END)
    assert text[start:end].strip("\n") == members.render_table([read_json(p) for p in results]), (
        "docs/decisions.md is stale: python -m benchmarks.members --render --update docs/decisions.md")
