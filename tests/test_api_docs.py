"""docs/api.md's session runs as written: every ```python block, in order, in one
namespace, in an empty folder. A block that fails (a renamed argument, a result field that
moved) fails this test, so the page stays true."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_page_has_the_session() -> None:
    code = blocks(PAGE.read_text(encoding="utf-8"))
    assert len(code) >= 5
    joined = "\n".join(code)
    for name in ("train", "evaluate", "sample", "export", "load_generator", "ablate"):
        assert f"ganforge.{name}(" in joined, name


def test_the_session_runs_as_written(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "api_docs"}
    for number, code in enumerate(blocks(PAGE.read_text(encoding="utf-8")), 1):
        try:
            exec(compile(code, f"docs/api.md block {number}", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"docs/api.md block {number} failed: {exc!r}") from exc
    shown = capsys.readouterr().out
    assert "step-0000040.safetensors" in shown
    assert "$.run.stepz" in shown
    assert (tmp_path / "samples.png").stat().st_size > 0
    assert (tmp_path / "exported" / "digits" / "model.safetensors").exists()
    assert (tmp_path / "runs" / "losses" / "summary.csv").exists()
