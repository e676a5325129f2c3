"""The README's Use blocks run as they stand, top to bottom, in an empty folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from conftest import run_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def use_blocks() -> tuple[str, str]:
    """The Use section's python block and all its bash blocks (joined, in order)."""
    use = README.read_text().split("## Use\n", 1)[1].split("\n## ", 1)[0]
    python = re.search(r"```python\n(.*?)```", use, re.S)
    bash = re.findall(r"```bash\n(.*?)```", use, re.S)
    assert python and len(bash) >= 2, "README's Use section has a python block and bash blocks"
    return python.group(1), "".join(bash)


def test_readme_use_blocks_run_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CI", "true")
    python, bash = use_blocks()
    exec(compile(python, "README.md (python)", "exec"), {})
    assert (tmp_path / "qqg_api.h5").exists()
    for line in bash.splitlines():
        command = shlex.split(line.split("#", 1)[0])
        if not command:
            continue
        assert command[0] == "lipsgen", line
        result = run_cli(*command[1:])
        assert result.returncode == 0, f"{line}\n{result.stderr}"
    assert (tmp_path / "report" / "report.html").exists() and (tmp_path / "cut.h5").exists()
    assert (tmp_path / "report_z3" / "hist_log10_y23.png").exists()
    assert (tmp_path / "report_top" / "hist_m_enu.png").exists()
