"""`jailer-policy`: compile, precompile, disassemble, check, explain, diff, audit, inspect, trace
and validate seccomp policies. Tables for people by default, `--json` for machines.

Exit codes: 0 success; 1 the check itself failed (audit found unacknowledged high findings,
validate saw a wrong verdict, the emulator disagrees with the model); 2 bad input (malformed
policy, unknown category or syscall, unreadable file), always one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
# Numbers on the command line: ASCII decimal or 0x hex, nothing int(text, 0) also takes
# (signs, 0b/0o, underscores, surrounding blanks, non-ASCII digits).
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from jailer.policies.errors import PolicyError

    try:
        return int(args.handler(args) or 0)
    except PolicyError as error:
        print(f"jailer-policy: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"jailer-policy: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors as one line (it prints the usage block first), exit 2; the
    subcommands' parsers are of this class too (argparse makes them with the parent's)."""

    def error(self, message: str) -> NoReturn:
        # "unrecognized arguments" quotes the arguments raw: a newline in one stays escaped.
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jailer-policy", description="Seccomp policy toolchain for Stockade.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    def arch(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--arch", default="x86_64", choices=("x86_64", "aarch64"))

    sub = command("compile", _compile, "compile every category to BPF")
    sub.add_argument("policy")
    arch(sub)
    sub.add_argument("--split-output", metavar="DIR", help="write <category>.bpf files into DIR")

    sub = command("precompile", _precompile, "store every shipped category's program for the jailer and the VMM")
    sub.add_argument("--policy", action="append", metavar="NAME", help="only this shipped policy (default: all)")
    arch(sub)
    sub.add_argument("--output-dir", metavar="DIR", help="the store (default: the package's compiled/ directory)")
    sub.add_argument("--check", action="store_true",
                     help="write nothing; exit 1 unless every stored program equals a fresh compile")

    sub = command("disasm", _disasm, "disassemble a raw BPF program")
    sub.add_argument("file")
    arch(sub)

    sub = command("check", _check, "the verdict for one system call, and the rule that decided it")
    sub.add_argument("target", metavar="POLICY|FILE.bpf")
    sub.add_argument("--thread", "--category", dest="category", help="the category (required for a policy)")
    arch(sub)
    sub.add_argument("syscall", help="name, or number (decimal or 0x hex, 0 to 0xffffffff)")
    sub.add_argument("args", nargs="*", help="up to 6 argument values (decimal or 0x hex, 0 to 2^64-1)")

    sub = command("explain", _explain, "per category: syscalls, conditions, actions, counts")
    sub.add_argument("policy")

    sub = command("diff", _diff, "per category: rules added, removed, narrowed, widened")
    sub.add_argument("old")
    sub.add_argument("new")

    sub = command("audit", _audit, "findings with severity and remedy")
    sub.add_argument("policy")
    arch(sub)

    sub = command("export-oci", _export_oci, "write one OCI/Docker profile per category")
    sub.add_argument("policy")
    arch(sub)
    sub.add_argument("--output-dir", metavar="DIR", help="write <category>.oci.json files (default: stdout)")

    sub = command("export-firecracker", _export_firecracker, "write strict Firecracker seccompiler JSON")
    sub.add_argument("policy")

    sub = command("import-oci", _import_oci, "convert an OCI/Docker profile to a one-category policy")
    sub.add_argument("profile")
    arch(sub)
    sub.add_argument("--category", default="oci")

    sub = command("inspect", _inspect, "the seccomp filters of each thread of a running process")
    sub.add_argument("pid", type=int)
    sub.add_argument("--policy", action="append", help="match against this policy (default: all shipped)")

    sub = command("validate", _validate, "run every rule's syscall under the compiled filter on this kernel")
    sub.add_argument("policy")
    sub.add_argument("--category", action="append", help="only these categories")

    sub = command("trace", _trace, "run a command under strace and write a policy from what its threads did")
    sub.add_argument("--output", "-o", required=True, help="where to write the policy JSON")
    sub.add_argument("--default-action", default="kill_process", help="for unlisted syscalls (default kill_process)")
    sub.add_argument("--union", metavar="CATEGORY", help="also write CATEGORY, the union of all threads' needs")
    sub.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    return parser


def _load(path: str) -> Any:
    from jailer.policies import load_policy

    return load_policy(path)


def _read(path: str) -> bytes:
    from jailer.policies import read_regular_file

    return read_regular_file(path)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _compile(args: argparse.Namespace) -> int:
    from jailer.policies import compiler
    from jailer.policies.files import check_output_path

    check_output_path(args.split_output, "--split-output")
    policy = _load(args.policy)
    programs = compiler.compile_policy(policy, args.arch)
    paths = compiler.write_split_output(programs, args.split_output) if args.split_output is not None else []
    rows = [(name, len(program) // 8, len(program)) for name, program in programs.items()]
    data = {"arch": args.arch, "categories": {n: {"instructions": i, "bytes": b} for n, i, b in rows}, "files": paths}
    _emit(args, data, table(("category", "instructions", "bytes"), rows) + "".join(f"\nwrote {p}" for p in paths))
    return 0


def _precompile(args: argparse.Namespace) -> int:
    from jailer.policies import precompiled
    from jailer.policies.files import check_output_path

    check_output_path(args.output_dir, "--output-dir")
    entries = precompiled.precompile(args.policy, args.arch, args.output_dir, check_only=args.check)
    rows = [(e.policy, e.category, e.instructions, e.status, e.path) for e in entries]
    bad = [e for e in entries if e.status not in ("fresh", "unchanged", "written", "removed")]
    # "entries": a program's instructions, or the number of names in the syscall-name table.
    text = table(("policy", "category", "entries", "status", "file"), rows)
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.status] = counts.get(entry.status, 0) + 1
    text += "\n" + ", ".join(f"{count} {status}" for status, count in counts.items())
    _emit(args, {"arch": args.arch, "entries": [e.to_json() for e in entries]}, text)
    return EXIT_FAILED if args.check and bad else 0


def _disasm(args: argparse.Namespace) -> int:
    from jailer.policies import bpf

    lines = bpf.disassemble(_read(args.file), args.arch)
    _emit(args, [line.to_json() for line in lines], bpf.format_listing(lines))
    return 0


def _number(text: str, limit: int) -> int | None:
    """`text` as ASCII decimal or 0x hex if it is one and at most `limit`, else None."""
    if not _NUMBER.fullmatch(text):
        return None
    if text[:2] in ("0x", "0X"):
        value = int(text, 16)
    else:
        digits = text.lstrip("0") or "0"
        if len(digits) > len(str(limit)):  # also keeps int() away from its 4300-digit limit
            return None
        value = int(digits)
    return value if value <= limit else None


def _int(text: str) -> int:
    from jailer.policies.errors import PolicyError

    value = _number(text, (1 << 64) - 1)
    if value is None and _NUMBER.fullmatch(text):
        raise PolicyError(f"argument out of 64-bit range: {text!r} (at most 0xffffffffffffffff)")
    if value is None:
        raise PolicyError(f"not an integer: {text!r} (expected decimal or 0x hex from 0 to 2^64-1)")
    return value


def _syscall(text: str, arch: str) -> tuple[str, int]:
    from jailer.policies import syscalls
    from jailer.policies.errors import PolicyError

    if text[:1] in tuple("0123456789+-"):
        nr = _number(text, 0xFFFFFFFF)
        if nr is None:
            raise PolicyError(f"not a syscall number: {text!r} (expected decimal or 0x hex from 0 to 0xffffffff)")
        return (syscalls.name(nr, arch) or f"#{nr}"), nr
    nr_or_none = syscalls.number(text, arch)
    if nr_or_none is None:
        raise PolicyError(f"unknown syscall {text!r} on {arch}")
    return text, nr_or_none


def _check(args: argparse.Namespace) -> int:
    from jailer.policies import bpf, compiler, syscalls
    from jailer.policies.errors import PolicyError

    if len(args.args) > 6:
        raise PolicyError(f"at most 6 arguments, got {len(args.args)}")
    values = tuple(_int(value) for value in args.args) + (0,) * (6 - len(args.args))
    name, nr = _syscall(args.syscall, args.arch)
    data = bpf.SeccompData(nr, arch=syscalls.AUDIT_ARCH[args.arch], args=values)
    result: dict[str, Any] = {"syscall": name, "nr": nr, "args": list(values)}
    if args.target.endswith(".bpf"):
        run = bpf.emulate(_read(args.target), data)
        result.update(verdict=str(run.action), decided_at=run.trace[-1])
        _emit(args, result, f"{name}: {run.action} (returned at instruction {run.trace[-1]:04d})")
        return 0
    policy = _load(args.target)
    if args.category is None:
        raise PolicyError(f"--thread CATEGORY is needed for a policy (categories: {', '.join(policy.categories)})")
    category = policy.category(args.category)
    action, rule = category.decide(name, values)
    program = compiler.compile_category(policy, args.category, args.arch)
    run = bpf.emulate(program, data)
    decided_by = "default action" if rule is None else f"rule {category.rules.index(rule) + 1}: {rule.describe()}"
    result.update(category=args.category, verdict=str(action), rule=decided_by, compiled_verdict=str(run.action))
    text = f"{args.category}: {name}: {action} ({decided_by})"
    if run.action != action:
        text += f"\nMISMATCH: the compiled program returns {run.action}"
    _emit(args, result, text)
    return 0 if run.action == action else EXIT_FAILED


def _explain(args: argparse.Namespace) -> int:
    from jailer.policies import explain

    policy = _load(args.policy)
    summaries = [explain.summarize(category) for category in policy.categories.values()]
    parts = [
        table(
            ("category", "default", "on match", "rules", "syscalls", "unconditional", "with arg filters"),
            [(s.category, s.default_action, s.filter_action, s.rules, s.syscalls, s.unconditional, s.with_arg_filters) for s in summaries],
        )
    ]
    for summary in summaries:
        rows = [(syscall, " | ".join(conditions)) for syscall, conditions in summary.entries.items()]
        parts.append(f"\n[{summary.category}] default {summary.default_action}, on match {summary.filter_action}\n"
                     + table(("syscall", "when"), rows))
    _emit(args, [s.to_json() for s in summaries], "\n".join(parts))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from jailer.policies import diff

    changes = diff.diff_policies(_load(args.old), _load(args.new))
    text = table(("category", "syscall", "change", "detail"), [(c.category, c.subject, c.kind, c.detail) for c in changes])
    _emit(args, [c.to_json() for c in changes], text if changes else "no differences")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from jailer.policies import audit

    findings = audit.audit_policy(_load(args.policy), args.arch)
    rows = [(f.severity + ("" if f.acknowledged is None else " (ack)"), f.category, f.id, f.title, f.remedy) for f in findings]
    failing = [f for f in findings if f.severity == "high" and f.acknowledged is None]
    text = table(("severity", "category", "id", "finding", "remedy"), rows) if findings else "no findings"
    text += f"\n{len(findings)} findings, {len(failing)} unacknowledged high"
    _emit(args, [f.to_json() for f in findings], text)
    return EXIT_FAILED if failing else 0


def _export_oci(args: argparse.Namespace) -> int:
    from jailer.policies import oci
    from jailer.policies.files import check_output_path, write_category_files

    check_output_path(args.output_dir, "--output-dir")
    profiles = oci.export_policy(_load(args.policy), args.arch)
    if args.output_dir is not None:
        contents = {name: (json.dumps(profile, indent=2) + "\n").encode() for name, profile in profiles.items()}
        for path in write_category_files(args.output_dir, contents, ".oci.json"):
            print(path)
    else:
        print(json.dumps(profiles, indent=2))
    return 0


def _export_firecracker(args: argparse.Namespace) -> int:
    print(json.dumps(_load(args.policy).to_firecracker_json(), indent=4))
    return 0


def _import_oci(args: argparse.Namespace) -> int:
    from jailer.policies import oci, parser

    document = parser.load_json(args.profile)
    imported = oci.import_profile(document, name=args.category, arch=args.arch, source=args.profile)
    if imported.skipped_names:
        skipped = ", ".join(parser.describe_value(name) for name in imported.skipped_names)
        print(f"jailer-policy: skipped names unknown on {args.arch}: {skipped}", file=sys.stderr)
    print(json.dumps({args.category: imported.category.to_json()}, indent=2))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from jailer.policies import inspect

    paths = args.policy or None
    threads = inspect.inspect_process(args.pid, policies=paths)
    rows = []
    for thread in threads:
        names = ", ".join(f.match or f"unknown ({f.instructions} insns)" for f in thread.filters) or "-"
        rows.append((thread.tid, thread.name, thread.seccomp_mode, thread.no_new_privs, len(thread.filters), names))
    text = table(("tid", "thread", "seccomp", "nnp", "filters", "categories (oldest first)"), rows)
    text += "\n" + "\n".join(thread.summary() for thread in threads)
    _emit(args, [thread.to_json() for thread in threads], text)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from jailer.policies import validate

    policy = _load(args.policy)
    results = validate.validate_policy(policy, categories=args.category)
    failures = [r for r in results if not r.ok]
    rows = [(r.category, r.rule_number, r.syscall, r.description, r.expected, r.observed, "ok" if r.ok else "FAIL") for r in results]
    text = table(("category", "rule", "syscall", "probe", "expected", "observed", ""), rows)
    text += f"\n{len(results)} probes, {len(failures)} failed"
    _emit(args, [r.to_json() for r in results], text)
    return EXIT_FAILED if failures else 0


def _trace(args: argparse.Namespace) -> int:
    from jailer.policies import parser as policy_parser
    from jailer.policies import trace
    from jailer.policies.errors import PolicyError
    from jailer.policies.files import check_output_path

    check_output_path(args.output, "--output")
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise PolicyError("trace needs a command after --")
    try:
        action_json = json.loads(args.default_action) if args.default_action.startswith("{") else args.default_action
    except (ValueError, RecursionError):
        raise PolicyError(f"--default-action: not an action: {args.default_action!r}") from None
    default = policy_parser.parse_action(action_json, "--default-action")
    result = trace.trace_command(command)
    policy = trace.policy_from_trace(result, default_action=default, union=args.union)
    Path(args.output).write_text(json.dumps(policy.to_json(), indent=2) + "\n")
    rows = [(name, len(category.rules), len(category.syscalls())) for name, category in policy.categories.items()]
    _emit(args, {"exit_status": result.exit_status, "output": args.output, "categories": {n: r for n, r, _ in rows}},
          table(("category", "rules", "syscalls"), rows) + f"\nwrote {args.output} (command exit status {result.exit_status})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
