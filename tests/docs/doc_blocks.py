"""Run the code blocks of a Markdown file, in order, as a reader would.

Used by ``test_docs_blocks.py`` (one subprocess per file, so registrations made by one page
never leak into another or into the test process); also runnable by hand::

    python tests/docs/doc_blocks.py docs/Extending_PyFlameRT.md

What runs:

* every ```` ```python ```` block, in one namespace per file (later blocks see earlier names);
* in ```` ```bash ```` / ```` ```sh ```` blocks whose first command starts with ``pyflame-rt``,
  each ``pyflame-rt ...`` line, run in-process through ``pyflame_rt.cli.main`` and required
  to exit 0 (lines using pipes or redirections, and other commands, are not run).

A block preceded by ``<!-- doctest: skip REASON -->`` is not run (the reason is printed).

The working folder looks like the repository root to the blocks: it holds ``model.onnx`` (a
copy of the demo model) and a link ``src`` to the repository's ``src/``, so a page may refer
to ``src/pyflame_rt/models/shapes_cnn.onnx`` as the README does.

The last line printed is ``doc-blocks: ran P python block(s), C command(s), skipped S`` on
success; a failure prints the file and line of the block and exits 1.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass

FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
SKIP = re.compile(r"<!--\s*doctest:\s*skip\b(.*?)-->")
SHELL_SYNTAX = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "&"}


@dataclass
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    skip: str | None = None


def parse_blocks(text: str) -> list[Block]:
    """Fenced code blocks of ``text`` with their language and opening line."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    pending_skip: str | None = None
    while i < len(lines):
        skip = SKIP.search(lines[i])
        if skip:
            pending_skip = skip.group(1).strip() or "no reason given"
        m = FENCE.match(lines[i])
        if not m:
            if lines[i].strip() and not skip:
                pending_skip = None
            i += 1
            continue
        indent, lang = m.group(1), m.group(2).lower()
        start = i + 1
        body = []
        i += 1
        while i < len(lines) and not re.match(rf"^{indent}```\s*$", lines[i]):
            body.append(lines[i].removeprefix(indent))
            i += 1
        blocks.append(Block(lang, "\n".join(body) + "\n", start, pending_skip))
        pending_skip = None
        i += 1
    return blocks


def commands(block: Block) -> list[list[str]]:
    """The ``pyflame-rt`` command lines of a shell block that starts with one."""
    lines = []
    for raw in block.code.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    if not lines or not lines[0].startswith("pyflame-rt"):
        return []
    out = []
    for line in lines:
        argv = shlex.split(line, comments=True)
        if argv and argv[0] == "pyflame-rt" and not SHELL_SYNTAX & set(argv):
            out.append(argv[1:])
    return out


def runnable(block: Block) -> bool:
    if block.lang in ("python", "py3"):
        return True
    return block.lang in ("bash", "sh", "shell", "console") and bool(commands(block))


def run_file(path: str, repo_root: str) -> int:
    from pyflame_rt.cli import main as cli_main
    from pyflame_rt.models import demo_model_path

    with open(path, encoding="utf-8") as fh:
        blocks = parse_blocks(fh.read())
    work = tempfile.mkdtemp(prefix="pyflame_rt_docs_")
    shutil.copy(demo_model_path(), os.path.join(work, "model.onnx"))
    os.symlink(os.path.join(repo_root, "src"), os.path.join(work, "src"))
    os.chdir(work)
    os.environ["PYFLAME_RT_PROGRESS"] = "0"
    namespace: dict = {"__name__": "__main__"}
    ran_python = ran_commands = skipped = 0
    try:
        for block in blocks:
            if not runnable(block):
                continue
            where = f"{path}:{block.line} ({block.lang} block)"
            if block.skip is not None:
                print(f"doc-blocks: skipped {where}: {block.skip}")
                skipped += 1
                continue
            print(f"doc-blocks: running {where}", flush=True)
            if block.lang in ("python", "py3"):
                try:
                    exec(compile(block.code, f"{path}:{block.line}", "exec"), namespace)
                except BaseException:  # noqa: BLE001 - report any failure with its location
                    traceback.print_exc()
                    print(f"doc-blocks: FAILED {where}")
                    return 1
                ran_python += 1
                continue
            for argv in commands(block):
                code = 0
                try:
                    cli_main(argv)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None
                                                                       else 1)
                if code != 0:
                    print(f"doc-blocks: FAILED {where}: pyflame-rt {' '.join(argv)} exited "
                          f"{code}")
                    return 1
                ran_commands += 1
    finally:
        os.chdir(repo_root)
        shutil.rmtree(work, ignore_errors=True)
    print(f"doc-blocks: ran {ran_python} python block(s), {ran_commands} command(s), skipped "
          f"{skipped}")
    return 0


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    sys.exit(run_file(os.path.abspath(sys.argv[1]), root))
