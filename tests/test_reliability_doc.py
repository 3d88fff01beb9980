"""RELIABILITY.md names the test behind each promise: every test it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_test_named_in_reliability_md_exists() -> None:
    text = (ROOT / "RELIABILITY.md").read_text()
    named = set(re.findall(r"\b(test_\w+)::(test_\w+)", text))
    assert named, "RELIABILITY.md names no test"
    missing = []
    for module, test in sorted(named):
        source = ROOT / "tests" / f"{module}.py"
        if not source.exists() or not re.search(
            rf"^(async )?def {test}\b", source.read_text(), re.M
        ):
            missing.append(f"{module}::{test}")
    assert missing == []
