"""The docs cannot rot: every code block of README.md and docs/*.md runs, links resolve, and the
generated pages match a fresh rendering."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from doc_blocks import Block, commands, parse_blocks, runnable

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("doc_blocks.py")
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", DOC_FILES, ids=_rel)
def test_code_blocks_run(path):
    blocks = [b for b in parse_blocks(path.read_text(encoding="utf-8")) if runnable(b)]
    python = sum(1 for b in blocks if b.lang in ("python", "py3") and b.skip is None)
    cmds = sum(len(commands(b)) for b in blocks if b.lang not in ("python", "py3")
               and b.skip is None)
    skipped = sum(1 for b in blocks if b.skip is not None)
    env = dict(os.environ, PYFLAME_RT_PROGRESS="0")
    proc = subprocess.run([sys.executable, str(RUNNER), str(path)], check=False,
                          capture_output=True, text=True, timeout=600, cwd=str(ROOT), env=env)
    output = proc.stdout[-6000:] + "\n--- stderr\n" + proc.stderr[-6000:]
    assert proc.returncode == 0, output
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary == (f"doc-blocks: ran {python} python block(s), {cmds} command(s), "
                       f"skipped {skipped}"), output


def test_readme_and_guides_have_runnable_examples():
    readme = [b for b in parse_blocks((ROOT / "README.md").read_text()) if runnable(b)]
    assert any(b.lang == "python" for b in readme)
    for name in ("Developer_Guide.md", "Extending_PyFlameRT.md", "Examples_and_Tutorials.md"):
        blocks = parse_blocks((ROOT / "docs" / name).read_text())
        assert sum(1 for b in blocks if b.lang == "python" and b.skip is None) >= 3, name


def test_readme_keeps_its_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    shell = [b.code.strip() for b in parse_blocks(text) if b.lang == "bash"]
    assert 'pip install -e ".[dev]" && pyflame-rt demo' in shell
    assert "bash scripts/test.sh" in shell


@pytest.mark.parametrize("path", DOC_FILES, ids=_rel)
def test_relative_links_resolve(path):
    text = path.read_text(encoding="utf-8")
    # Skip code: a link-looking thing inside a code block is not a link.
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve()
        assert linked.exists(), f"{_rel(path)} links to missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked.read_text(encoding="utf-8")), \
                f"{_rel(path)} links to missing anchor {target}"


def _anchors(markdown: str) -> set[str]:
    from pyflame_rt.tools.gen_docs import _anchor

    prose = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    titles = re.findall(r"^#+\s+(.*)$", prose, flags=re.MULTILINE)
    return {_anchor(m.replace("`", "")) for m in titles}


# -- the collector itself ------------------------------------------------------------------------
def test_parser_finds_languages_lines_and_skip_markers():
    text = ("intro\n\n```python\nx = 1\n```\n\n<!-- doctest: skip needs a GPU -->\n"
            "```python\nraise SystemExit(3)\n```\n\n```bash\npyflame-rt demo --runs 1\n"
            "pyflame-rt inspect m.onnx | head\ndot -Tsvg g.dot\n```\n\n```bash\npip install x\n"
            "pyflame-rt demo\n```\n")
    blocks = parse_blocks(text)
    assert [(b.lang, b.line) for b in blocks] == [("python", 3), ("python", 8), ("bash", 12),
                                                  ("bash", 18)]
    assert blocks[0].skip is None and blocks[1].skip == "needs a GPU"
    assert commands(blocks[2]) == [["demo", "--runs", "1"]]  # pipes and other tools not run
    assert not runnable(blocks[3])  # a shell block that does not start with pyflame-rt
    assert runnable(Block("python", "pass\n", 1))


def test_runner_reports_a_failing_block(tmp_path):
    page = tmp_path / "broken.md"
    page.write_text("# t\n\n```python\nassert 1 + 1 == 2\n```\n\n```python\nassert False, "
                    "'boom'\n```\n")
    proc = subprocess.run([sys.executable, str(RUNNER), str(page)], check=False,
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 1
    assert f"FAILED {page}:7 (python block)" in proc.stdout
    assert "boom" in proc.stderr


# -- generated pages -------------------------------------------------------------------------------
def _recorded_onnx_version() -> str | None:
    m = re.search(r"ONNX ([\d.]+) operator schemas", (ROOT / "docs" / "operators.md").read_text())
    return m.group(1) if m else None


@pytest.fixture(scope="module")
def fresh_rendering():
    """The generated pages and kernel list, rendered in a fresh process: other tests register
    and unregister kernels in this one, which must not change what is compared."""
    script = ("import json, sys\n"
              "from pyflame_rt.tools.gen_docs import GENERATED\n"
              "from pyflame_rt.ops import all_kernels\n"
              "pages = {name: render() for name, render in GENERATED.items()}\n"
              "ops = sorted({k.op_type for k in all_kernels() if not k.custom})\n"
              "sys.stdout.write(json.dumps({'pages': pages, 'ops': ops}))\n")
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True,
                          text=True, timeout=300, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", ["API_Reference.md", "operators.md"])
def test_generated_docs_are_up_to_date(name, fresh_rendering):
    if name == "operators.md" and _recorded_onnx_version() != onnx.__version__:
        pytest.skip(f"operators.md was generated with ONNX {_recorded_onnx_version()}, this "
                    f"environment has {onnx.__version__}: its schema columns legitimately "
                    "differ")
    current = (ROOT / "docs" / name).read_text(encoding="utf-8")
    assert current == fresh_rendering["pages"][name], (
        f"docs/{name} is out of date: run `python -m pyflame_rt.tools.gen_docs` and commit it")


def test_operators_doc_lists_every_kernel(fresh_rendering):
    text = (ROOT / "docs" / "operators.md").read_text()
    assert len(fresh_rendering["ops"]) > 100
    for op in fresh_rendering["ops"]:
        assert f"| `{op}` |" in text, op
