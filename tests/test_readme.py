"""The README's Python snippets run, and show what they really return.

Every ```python block of README.md runs, in order, in one namespace, in a temporary
folder (the toolkit examples reuse the data of the ones before).  Two conventions
make a block's shown output checked (doctest's rules: ``...`` matches anything,
white space is normalised):

- ``expression  # -> expected``: ``repr(expression)`` must match ``expected``;
- ``print(...)`` followed by comment lines: those lines (without ``# ``) are the
  printed output.

A block right after the line ``<!-- readme-test: skip -->`` is not run (for a
"before" snippet written for another package); a block that imports torch or
fastcrf.torch is skipped when torch is not installed.
"""

import ast
import contextlib
import doctest
import io
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SKIP_MARK = "<!-- readme-test: skip -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*$")
CHECKER = doctest.OutputChecker()
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(text):
    """``(first line number, code, skipped)`` of every ```python block of ``text``."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group("indent"))
        skipped = i > 0 and lines[i - 1].strip() == SKIP_MARK
        start = i + 1
        j = start
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        body = [line[indent:] if line[:indent].strip() == "" else line
                for line in lines[start:j]]
        blocks.append((start + 1, "\n".join(body) + "\n", skipped))
        i = j + 1
    return blocks


def _expected_repr(line):
    """The text after ``# ->`` on a source line, or None."""
    m = re.search(r"#\s*->\s?(.*)$", line)
    return None if m is None else m.group(1).strip()


def _is_print(stmt):
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "print")


def _following_comments(lines, end):
    """The comment lines right after source line ``end`` (1-based), without ``# ``."""
    out = []
    for line in lines[end:]:
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        out.append(stripped[2:] if stripped.startswith("# ") else stripped[1:])
    return out


def run_block(code, namespace, where):
    """Run ``code`` statement by statement; return how many outputs were checked."""
    tree = ast.parse(code)
    lines = code.splitlines()
    checked = 0
    for stmt in tree.body:
        last = lines[stmt.end_lineno - 1]
        expected = _expected_repr(last)
        source = ast.Module(body=[stmt], type_ignores=[])
        if expected is not None and isinstance(stmt, ast.Expr):
            value = eval(compile(ast.Expression(stmt.value), where, "eval"), namespace)
            got = repr(value) + "\n"
            assert CHECKER.check_output(expected + "\n", got, FLAGS), (
                f"{where}, line {stmt.lineno}: shows {expected!r}, returns {got.strip()!r}")
            checked += 1
        elif _is_print(stmt) and _following_comments(lines, stmt.end_lineno):
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(source, where, "exec"), namespace)
            want = "\n".join(_following_comments(lines, stmt.end_lineno)) + "\n"
            got = buffer.getvalue()
            assert CHECKER.check_output(want, got, FLAGS), (
                f"{where}, line {stmt.lineno}: shows\n{want}prints\n{got}")
            checked += 1
        else:
            exec(compile(source, where, "exec"), namespace)
    return checked


def test_the_readme_snippets_run_and_show_their_real_output(tmp_path, monkeypatch):
    if not README.exists():
        pytest.skip("README.md is not beside the tests (an installed copy of them)")
    monkeypatch.chdir(tmp_path)
    try:
        import torch  # noqa: F401
        has_torch = True
    except ImportError:
        has_torch = False
    namespace = {"__name__": "readme"}
    ran = checked = 0
    for line, code, skipped in python_blocks(README.read_text(encoding="utf-8")):
        needs_torch = re.search(r"^\s*(import|from) (fastcrf\.)?torch\b", code, re.M)
        if skipped or (needs_torch and not has_torch):
            continue
        checked += run_block(code, namespace, f"README.md:{line}")
        ran += 1
    # The README has a dozen Python examples with outputs: a parser that finds none
    # (a changed fence or marker) must not pass silently.
    assert ran >= 8 and checked >= 10, (ran, checked)


def test_shown_outputs_are_compared():
    namespace = {}
    assert run_block("x = 2\nx + 1  # -> 3\n", namespace, "t") == 1
    with pytest.raises(AssertionError, match="shows '4'"):
        run_block("x + 1  # -> 4\n", namespace, "t")
    assert run_block("print('a b')\n# a ...\n", namespace, "t") == 1
    with pytest.raises(AssertionError, match="prints"):
        run_block("print('a b')\n# c\n", namespace, "t")


def test_blocks_are_found_with_their_skip_marks():
    text = "x\n```python\na = 1\n```\n" + SKIP_MARK + "\n```python\nb = 2\n```\n" \
        "- item\n\n  ```python\n  c = 3\n  ```\n"
    assert [(code, skipped) for _, code, skipped in python_blocks(text)] == [
        ("a = 1\n", False), ("b = 2\n", True), ("c = 3\n", False)]
