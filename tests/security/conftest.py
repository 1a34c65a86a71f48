"""The security suite's fixtures and end-of-run summary table (its `--jailer PATH` option is
registered in the root conftest, so that `pytest tests` accepts it too)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.security import MODES, RESULTS_KEY, EscapeResult, build_probe, default_jailer


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS_KEY] = []


@pytest.fixture(scope="session")
def jailer_under_test(pytestconfig: pytest.Config) -> tuple[Path, bool]:
    """(the jailer binary, whether it is Stockade's own and so takes our extra flags)."""
    ours = default_jailer()
    chosen = pytestconfig.getoption("--jailer", default=None)
    if chosen is None:
        return ours, True
    path = Path(chosen).resolve()
    if not path.is_file():
        pytest.exit(f"--jailer {chosen}: no such file", returncode=4)
    return path, path == ours.resolve()


@pytest.fixture(scope="session")
def escape_probe(c_build_dir: Path) -> Path:
    return build_probe(c_build_dir)


@pytest.fixture(scope="session")
def jail_exec_file(escape_probe: Path, jailer_under_test: tuple[Path, bool]) -> Path:
    """The probe under the name the audited jailer accepts: Firecracker's jailer 1.2 to 1.12
    insists the exec file name contains "firecracker"."""
    if jailer_under_test[1]:
        return escape_probe
    renamed = escape_probe.with_name(f"firecracker_{escape_probe.name}")
    shutil.copy2(escape_probe, renamed)
    return renamed


@pytest.fixture
def escape_results(pytestconfig: pytest.Config) -> Iterator[list[EscapeResult]]:
    yield pytestconfig.stash[RESULTS_KEY]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    results: list[EscapeResult] = config.stash.get(RESULTS_KEY, [])
    if not results:
        return
    order = {mode: index for index, mode in enumerate(MODES)}
    rows = [("technique", "mode", "stopped by", "errno/signal", "result")]
    for result in sorted(results, key=lambda r: (r.technique, order.get(r.mode, 9))):
        rows.append((result.technique, result.mode, result.stopped_by or "-", result.token, result.verdict))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    terminalreporter.section("escape attempts against the jail")
    jailer = config.getoption("--jailer", default=None) or "stockade jailer"
    terminalreporter.write_line(f"jailer: {jailer}")
    for index, row in enumerate(rows):
        terminalreporter.write_line(" | ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            terminalreporter.write_line("-+-".join("-" * width for width in widths))
    through = [r for r in results if r.verdict in ("GOT THROUGH", "UNEXPECTED")]
    terminalreporter.write_line(
        f"{len(results)} attempts, {len({r.technique for r in results})} techniques; "
        f"{len(through)} not stopped as documented"
    )
