"""How the jailer chooses its outer filter (pure logic; the toolchain is replaced by fakes).

The real toolchain end to end is exercised by tests/integration/jailer/test_seccomp_layer.py.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from jailer import seccomp
from jailer.errors import ErrorKind, JailerError
from jailer.policies import precompiled


class FakePolicy:
    def __init__(self, categories: dict[str, bytes]) -> None:
        self.categories = categories


@pytest.fixture
def toolchain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, object]:
    """Fake `jailer.policies` + `jailer.policies.compiler` recording what the jailer asked for."""
    calls: dict[str, object] = {}
    baseline = tmp_path / "baseline.json"
    baseline.write_text("{}")
    policies = types.ModuleType("jailer.policies")
    compiler = types.ModuleType("jailer.policies.compiler")

    def load_policy(path: str) -> FakePolicy:
        calls["loaded"] = str(path)
        if not Path(path).exists():
            raise FileNotFoundError(2, "No such file or directory")
        if Path(path).read_text() == "broken":
            raise ValueError("line 1:\n  expected a JSON object")
        return FakePolicy({"baseline": b"B" * 8, "jail": b"J" * 8, "vmm": b"V" * 16})

    def shipped_policy_file(name: str) -> str:
        calls["shipped"] = name
        return str(baseline)

    def compile_category(policy: FakePolicy, category: str, arch: str = "x86_64") -> bytes:
        calls["compiled"] = category
        return policy.categories[category]

    policies.load_policy = load_policy  # type: ignore[attr-defined]
    policies.shipped_policy_file = shipped_policy_file  # type: ignore[attr-defined]
    policies.compiler = compiler  # type: ignore[attr-defined]
    compiler.compile_category = compile_category  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "jailer.policies", policies)
    monkeypatch.setitem(sys.modules, "jailer.policies.compiler", compiler)
    # An empty precompiled store: these tests are about the compile path.
    monkeypatch.setattr(precompiled, "STORE_DIR", str(tmp_path / "empty-store"))
    import jailer

    monkeypatch.setattr(jailer, "policies", policies, raising=False)
    calls["baseline_path"] = str(baseline)
    return calls


def test_default_is_the_shipped_baseline(toolchain: dict[str, object]) -> None:
    choice = seccomp.choose_filter(policy_path=None, category=None, disabled=False)
    assert choice.program == b"B" * 8
    assert toolchain["shipped"] == "baseline"
    assert toolchain["compiled"] == "baseline"
    assert toolchain["loaded"] == toolchain["baseline_path"]


def test_policy_file_defaults_to_the_jail_category(toolchain: dict[str, object], tmp_path: Path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text("{}")
    assert seccomp.choose_filter(policy_path=str(policy), category=None, disabled=False).program == b"J" * 8
    assert seccomp.choose_filter(policy_path=str(policy), category="vmm", disabled=False).program == b"V" * 16


def test_unknown_category(toolchain: dict[str, object], tmp_path: Path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text("{}")
    with pytest.raises(JailerError) as caught:
        seccomp.choose_filter(policy_path=str(policy), category="vcpu9", disabled=False)
    assert str(caught.value) == f"Seccomp category vcpu9 not found in {policy}"
    assert "compiled" not in toolchain


def test_policy_errors_are_one_line(toolchain: dict[str, object], tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("broken")
    with pytest.raises(JailerError) as caught:
        seccomp.choose_filter(policy_path=str(broken), category=None, disabled=False)
    assert str(caught.value) == f"Invalid seccomp policy {broken}: line 1: expected a JSON object"
    with pytest.raises(JailerError) as caught:
        seccomp.choose_filter(policy_path=str(tmp_path / "none.json"), category=None, disabled=False)
    assert caught.value.kind is ErrorKind.SECCOMP_POLICY
    assert str(caught.value).endswith(": No such file or directory (os error 2)")


def test_no_seccomp_and_flag_conflicts() -> None:
    assert seccomp.choose_filter(policy_path=None, category=None, disabled=True).program is None
    for policy_path, category in (("/p.json", None), (None, "jail")):
        with pytest.raises(JailerError) as caught:
            seccomp.choose_filter(policy_path=policy_path, category=category, disabled=True)
        assert caught.value.kind is ErrorKind.ARGUMENT_PARSING
    with pytest.raises(JailerError) as caught:
        seccomp.choose_filter(policy_path=None, category="jail", disabled=False)
    assert str(caught.value) == "Failed to parse arguments: The argument 'seccomp-category' requires 'seccomp-policy'."


def test_missing_toolchain_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import jailer.policies

    monkeypatch.setattr(precompiled, "STORE_DIR", str(tmp_path / "empty-store"))  # no stored program either
    monkeypatch.setitem(sys.modules, "jailer.policies.compiler", None)
    monkeypatch.delattr(jailer.policies, "compiler", raising=False)
    with pytest.raises(JailerError) as caught:
        seccomp.choose_filter(policy_path=None, category=None, disabled=False)
    assert caught.value.kind is ErrorKind.SECCOMP_TOOLCHAIN


def test_a_fresh_stored_program_needs_no_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With a program precompiled for the policy's exact bytes, neither parser nor compiler runs."""
    import jailer.policies

    store = tmp_path / "store"
    store.mkdir()
    policy = tmp_path / "vmm.json"
    policy.write_bytes(b"{}")
    program = b"\x06\x00\x00\x00\x00\x00\xff\x7f"
    key = precompiled.freshness_key(b"{}", "jail", "x86_64")
    (store / "vmm.jail.x86_64.bpf").write_bytes(precompiled.encode(key, program))
    monkeypatch.setattr(precompiled, "STORE_DIR", str(store))
    monkeypatch.setitem(sys.modules, "jailer.policies.compiler", None)
    monkeypatch.delattr(jailer.policies, "compiler", raising=False)
    choice = seccomp.choose_filter(policy_path=str(policy), category=None, disabled=False)
    assert choice.program == program
    assert choice.description == f"{policy} category jail"
    # Other bytes, another category: no stored program, so the (missing) compiler is needed.
    for content, category in ((b"{ }", None), (b"{}", "vmm")):
        policy.write_bytes(content)
        with pytest.raises(JailerError) as caught:
            seccomp.choose_filter(policy_path=str(policy), category=category, disabled=False)
        assert caught.value.kind is ErrorKind.SECCOMP_TOOLCHAIN
