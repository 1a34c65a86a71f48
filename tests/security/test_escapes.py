"""Escape attempts against a real jail: every technique must be stopped, and by what we say.

Each technique runs in a fresh jail (unique id, private chroot base, uid 40100) in two modes:
the jailer's defaults, and `--no-seccomp`. The token each run produces (errno, signal,
`contained`, or a harness verdict) must be one the catalogue in `support.security` documents
for that mode; the layer it names goes into the summary table. With `--jailer PATH` only the
defaults mode runs (the other jailer has no `--no-seccomp`), and techniques that need our extra
flags are skipped.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.security import (
    DEFAULT,
    MODES,
    NO_SECCOMP,
    TECHNIQUES,
    TECHNIQUES_BY_NAME,
    EscapeResult,
    baseline_missing_reason,
    escape_harness,
    probe_techniques,
)


def test_probe_offers_every_catalogued_technique_with_a_description(escape_probe: Path) -> None:
    listing = subprocess.run([str(escape_probe), "list"], capture_output=True, text=True, check=True).stdout
    descriptions = dict(line.split("\t", 1) for line in listing.splitlines())
    assert len(descriptions) >= 40
    assert all(text.strip() for text in descriptions.values())
    assert sorted(descriptions) == sorted(TECHNIQUES_BY_NAME)
    assert probe_techniques(escape_probe) == list(descriptions)


def test_catalogue_documents_a_stopper_for_both_modes() -> None:
    for technique in TECHNIQUES:
        assert set(technique.expected) == set(MODES), technique.name
        assert all(technique.expected[mode] for mode in MODES), technique.name
        # The defaults must stop everything: an `escaped` token is only ever tolerated without seccomp.
        assert "escaped" not in technique.expected[DEFAULT], technique.name


def test_seccomp_attributions_are_falsifiable() -> None:
    """Where the defaults credit seccomp alone, the same token must not count as stopped without
    seccomp: the `--no-seccomp` run then has to show a different result, or the test fails."""
    for technique in TECHNIQUES:
        for key, stopper in technique.expected[DEFAULT].items():
            if stopper.startswith("seccomp") and "+" not in stopper:
                assert key not in technique.expected[NO_SECCOMP], (technique.name, key)


@pytest.mark.root
def test_privileged_probe_refuses_techniques_that_would_hit_the_host(escape_probe: Path) -> None:
    for name in ("kill_all", "reboot", "sethostname", "fork_bomb", "swapon"):
        result = subprocess.run([str(escape_probe), name], capture_output=True, text=True, timeout=10)
        assert result.returncode == 2, (name, result)
        assert '"outcome":"refused"' in result.stdout, (name, result.stdout)


def test_unknown_technique_is_a_usage_error(escape_probe: Path) -> None:
    result = subprocess.run([str(escape_probe), "no_such_technique"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown technique" in result.stderr


# What a bare `chroot` as root lets through: the probe and harness must see each of these as
# `escaped`, or a test that "passes" in a real jail proves nothing.
# Only techniques harmless to the host when run as root (the probe refuses the others then).
CANARIES = ("chroot_chdir_dotdot", "fchdir_inherited_fd", "inherited_fd_read", "host_environment",
            "kill_host_pid", "mount_tmpfs", "setuid_root", "mknod_block")


@pytest.mark.root
@pytest.mark.parametrize("name", CANARIES)
def test_probe_detects_an_escape_from_a_bare_chroot(name: str, escape_probe: Path, unique_name: str) -> None:
    with escape_harness(Path("/nonexistent"), escape_probe, unique_name, ours=False, weak=True) as harness:
        result = harness.run(TECHNIQUES_BY_NAME[name], NO_SECCOMP)
    assert result.token == "escaped", f"{name}: the canary was not detected: {result}"


@pytest.mark.root
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", [technique.name for technique in TECHNIQUES])
def test_escape_is_stopped(name: str, mode: str, jail_exec_file: Path, jailer_under_test: tuple[Path, bool],
                           unique_name: str, escape_results: list[EscapeResult],
                           request: pytest.FixtureRequest) -> None:
    technique = TECHNIQUES_BY_NAME[name]
    jailer, ours = jailer_under_test
    if not ours and mode == NO_SECCOMP:
        pytest.skip("--no-seccomp is a Stockade flag; another jailer runs the defaults mode only")
    if not ours and technique.ours_only:
        pytest.skip("needs Stockade's --ro-bind")
    if ours and mode == DEFAULT and (reason := baseline_missing_reason()):
        pytest.skip(f"the jailer's default outer filter cannot be installed yet: {reason}")
    if ours and mode in technique.known_hole:
        # Strict: the day the hole is closed this XPASSes and fails, so the marker gets removed.
        request.node.add_marker(pytest.mark.xfail(reason=technique.known_hole[mode], strict=True))

    with escape_harness(jailer, jail_exec_file, unique_name, ours) as harness:
        result = harness.run(technique, mode)
    escape_results.append(result)

    documented = ", ".join(technique.expected[mode])
    assert result.stopped_by is not None, (
        f"{name} [{mode}]: {result.verdict}: got {result.token} at {result.step!r} ({result.details}); "
        f"documented: {documented}"
    )
