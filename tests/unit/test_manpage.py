"""The man pages are generated from the code; the committed pages must be current, render cleanly,
and explain everything the code can say: every option, signal, environment variable and rule error."""

from __future__ import annotations

import ast
import random
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from rhid import manpage, service, settings
from rhid.cli import build_parser, main
from rhid.errors import RuleError, RuleFileError
from rhid.manpage import DIAGNOSTICS, FILE_PROBLEMS, render, render_rules_page, subcommands
from rhid.rulefile import load_rules
from rhid.rules import parse_rules

ROOT = Path(__file__).parents[2]
PAGES = {ROOT / "packaging" / "rhid.8": render, ROOT / "packaging" / "hapee-rhi.cfg.5": render_rules_page}
SOURCES = ROOT / "src" / "rhid"
ENTRIES = [entry for entries in DIAGNOSTICS.values() for entry in entries]


def section(page: str, title: str) -> str:
    """The source of one .SH section of a page."""
    return page.split(f"\n.SH {title}\n", 1)[1].split("\n.SH ", 1)[0]


@pytest.mark.parametrize("path", PAGES, ids=lambda path: path.name)
def test_committed_man_page_is_generated_from_the_current_code(path: Path) -> None:
    """Each committed page equals `python -m rhid.manpage NAME` (regenerate it after changing the code)."""
    assert path.read_text() == PAGES[path]()


def tool(name: str) -> str:
    """The path of a program the page tests run (groff comes with man-db, which install.sh installs)."""
    path = shutil.which(name)
    assert path, f"{name} is not installed"
    return path


@pytest.mark.parametrize("path", PAGES, ids=lambda path: path.name)
def test_man_page_renders_without_a_warning(path: Path) -> None:
    """groff -ww (every warning) and man -l render the page without a word on stderr, nor mandoc's lint."""
    groff = subprocess.run(
        [tool("groff"), "-ww", "-z", "-man", str(path)], capture_output=True, text=True, check=True
    )
    assert groff.stderr == ""
    shown = subprocess.run(
        [tool("man"), "--warnings", "-l", str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "MANWIDTH": "80", "LANG": "C.UTF-8"},
    )
    assert shown.stderr == ""
    stray = shown.stdout.replace("\\x", "").replace("\\u", "").replace(" \\\n", "")
    assert "\\" not in stray  # every backslash shown is one rhid prints (an escape) or a continuation
    if shutil.which("mandoc"):  # not installed by scripts/install.sh; checked where it is
        lint = subprocess.run(
            [tool("mandoc"), "-T", "lint", "-W", "warning", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


def test_man_page_names_every_option_and_exit_status() -> None:
    """Every option of every command appears in rhid(8), and so does each exit status."""
    page = render()
    for sub in subcommands(build_parser()).values():
        for action in sub._actions:
            for flag in set(action.option_strings) - {"-h", "--help"}:
                assert flag.replace("-", "\\-") in page, flag
    for status in range(5):
        assert f"\n  {status}  " in page, status


def test_man_page_explains_every_signal_the_daemon_handles() -> None:
    """SIGNALS in rhid(8) lists exactly the signals rhid's loop takes over (SIGHUP, SIGTERM, SIGINT)."""
    before = {
        signum: signal.getsignal(signum)
        for signum in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
    }
    with service.signals():
        handled = {signum.name for signum, handler in before.items() if signal.getsignal(signum) != handler}
    assert handled == set(manpage.SIGNALS)
    signals = section(render(), "SIGNALS")
    for name in handled:
        assert f".TP\n\\fB{name}\\fR\n" in signals, name


def test_man_page_explains_every_environment_variable_rhid_reads() -> None:
    """ENVIRONMENT in rhid(8) describes each variable the code reads, and RHID_ARGS of the unit."""
    read = {settings.SOCKET_VARIABLE}
    for source in SOURCES.glob("*.py"):
        read |= set(re.findall(r'environ\)?(?:\.get\(|\[)\s*"([A-Z][A-Z0-9_]*)"', source.read_text()))
    assert {"NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM", "INVOCATION_ID"} <= read  # the scan works
    environment = section(render(), "ENVIRONMENT")
    for name in read | {"RHID_ARGS"}:
        assert f".TP\n\\fB{name}\\fR\n" in environment, name  # (no name here has a hyphen to escape)


def templates(module: str, positions: dict[str, int]) -> set[str]:
    """Every message a module builds at the given call positions (`NameProblem`: argument 1 ...),
    and in the tuples its functions return (position "return"), as templates: "{}" where a value
    goes. A name is followed to what is assigned to it in the same function."""
    tree = ast.parse((SOURCES / f"{module}.py").read_text())
    found: set[str] = set()
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue

        def resolve(node: ast.expr, scope: ast.FunctionDef = function) -> set[str]:
            """The texts an expression can have; "{}" stands for any value that is not a literal."""
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                return {node.value}
            if isinstance(node, ast.JoinedStr):
                results = {""}
                for part in node.values:
                    options = (
                        {str(part.value)}
                        if isinstance(part, ast.Constant)
                        else resolve(part.value)
                        if isinstance(part, ast.FormattedValue)
                        else {"{}"}
                    )
                    results = {done + option for done in results for option in options}
                return results
            if isinstance(node, ast.IfExp):
                return resolve(node.body) | resolve(node.orelse)
            if isinstance(node, ast.Name):
                values: set[str] = set()
                assigns = [assign for assign in ast.walk(scope) if isinstance(assign, ast.Assign)]
                for assign in assigns:
                    for target in assign.targets:
                        if isinstance(target, ast.Name) and target.id == node.id:
                            values |= resolve(assign.value)
                        elif isinstance(target, ast.Tuple):
                            for index, element in enumerate(target.elts):
                                if isinstance(element, ast.Name) and element.id == node.id:
                                    value = assign.value
                                    values |= (
                                        resolve(value.elts[index]) if isinstance(value, ast.Tuple) else {"{}"}
                                    )
                return values or {"{}"}
            return {"{}"}

        for node in ast.walk(function):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in positions and len(node.args) > positions[name]:
                    found |= resolve(node.args[positions[name]])
            elif isinstance(node, ast.Return) and "return" in positions and isinstance(node.value, ast.Tuple):
                found |= resolve(node.value.elts[positions["return"]])
    return found - {"{}"}  # a value made elsewhere (problem.message): its literal is found where it is made


def as_pattern(template: str) -> re.Pattern[str]:
    """A template's literal words, with anything at all where a value goes."""
    return re.compile(".+?".join(map(re.escape, template.split("{}"))) + r"\Z", re.DOTALL)


def test_rule_page_shows_every_message_the_rule_compiler_can_build() -> None:
    """Every message grammar, rules and names build is printed by an example of hapee-rhi.cfg(5)."""
    built = (
        templates("rules", {"error": 2, "Diagnostic": 3})
        | templates("names", {"NameProblem": 1})
        | templates("grammar", {"return": 1})
    )
    assert len(built) >= 25  # the scan sees the messages (31 when this test was written)
    printed = [
        d.message
        for entry in ENTRIES
        for example in entry.examples
        for d in manpage.example_diagnostics(example)
    ]
    for template in built:
        if template.startswith("syntax error"):
            continue  # grammar's fallback for a pyparsing error without words: every element is named
        pattern = as_pattern(template)
        assert any(pattern.match(message) for message in printed), f"no example prints {template!r}"


def test_each_rule_page_example_prints_the_message_it_explains() -> None:
    """Every example under a message in hapee-rhi.cfg(5) makes rhid check print that message."""
    for entry in ENTRIES:
        assert entry.examples, entry.message
        for example in entry.examples:
            messages = [d.message for d in manpage.example_diagnostics(example)]
            assert any(entry.pattern().match(message) for message in messages), (entry.message, messages)


def test_every_message_for_mangled_rules_is_explained_on_the_rule_page() -> None:
    """Whatever a mangled rule line makes rhid print (pyparsing's words too) matches a message of the page."""
    chooser = random.Random(17)
    seeds = [
        "192.0.2.1 = all(b:be_a,f:fe_b)",
        "vol2%10.0.0.0/24, 2001:db8::1 = any(b:x)",
        "1.2.3.4=never",
        "t%1.2.3.4 = always()",
    ]
    pieces = [
        *" =,()%/:#abfx0123456789.;\t[]",
        "all",
        "any",
        "B:",
        "ALL",
        "alll",
        "255.255.255.0",
        "static",
        "\u202e",
    ]
    seen: set[str] = set()
    for _ in range(4000):
        line = chooser.choice(seeds)
        for _ in range(chooser.randint(1, 3)):
            at = chooser.randrange(len(line) + 1)
            cut = chooser.random() < 0.5
            line = line[:at] + ("" if cut else chooser.choice(pieces)) + line[at + (1 if cut else 0) :]
        try:
            parse_rules(f"{line}\n192.0.2.1 = all(b:x)\n", "f")
        except RuleError as exc:
            seen |= {d.message for d in exc.diagnostics}
    assert len({re.sub(r"'.*", "", message) for message in seen}) >= 15  # the corpus reaches many kinds
    for message in seen:
        assert any(entry.pattern().match(message) for entry in ENTRIES), message


def test_rule_page_lists_every_reason_a_rule_file_cannot_be_read(tmp_path: Path) -> None:
    """Each reason rulefile.read_rules_file gives (exit status 3) is listed in hapee-rhi.cfg(5)."""
    samples = [
        re.sub(r"\{[^}]+\}", "1", reason)
        for reason in FILE_PROBLEMS
        if not re.fullmatch(r"\{[^}]+\}", reason)
    ]
    reasons = templates("rules", {"RuleFileError": 1}) | templates("rulefile", {"RuleFileError": 1})
    assert len(reasons) >= 4
    for template in reasons:
        assert any(as_pattern(template).match(sample) for sample in samples), template
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(RuleFileError) as raised:
            load_rules(path)
        assert raised.value.reason in samples


def test_rule_page_examples_are_valid_and_summarised() -> None:
    """The EXAMPLES file of hapee-rhi.cfg(5) is valid, and the page shows rhid check's summary of it."""
    rules = parse_rules(manpage.RULE_EXAMPLE)
    page = render_rules_page()
    assert f"OK: {len(rules.rules)} rules" in section(page, "EXAMPLES")


def test_rule_page_shows_what_rhid_check_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The DIAGNOSTICS sample of hapee-rhi.cfg(5) is exactly what `rhid check` writes, and its exit status."""
    monkeypatch.chdir(tmp_path)
    Path(manpage.EXAMPLE_FILE).write_text(manpage.CHECK_SAMPLE)
    assert main(["check", "-c", manpage.EXAMPLE_FILE]) == 1
    assert capsys.readouterr().err == manpage.check_output(manpage.CHECK_SAMPLE) + "\n"
    assert "".join(manpage._example(manpage.check_output(manpage.CHECK_SAMPLE))) in "".join(
        section(render_rules_page(), "DIAGNOSTICS").split("\n")
    )
