"""The jailer's command line, parsed exactly like Firecracker's `utils::arg_parser`.

Only `--name value` and `--name` forms exist; everything after the first `--` goes verbatim to
the exec'd binary; `-h`/`--help` anywhere before `--` wins over everything, then `--version`.
Errors carry the reference's texts so tools that match them keep working.
"""

from __future__ import annotations

from jailer.errors import ErrorKind, JailerError


# Plain classes instead of dataclasses/typing here: importing those costs milliseconds on every
# jailer start, and start-up time is a product feature.
class ArgSpec:
    """One flag of the command line."""

    __slots__ = ("name", "help", "takes_value", "required", "multiple", "default")

    def __init__(self, name: str, help: str, *, takes_value: bool = True, required: bool = False,
                 multiple: bool = False, default: str | None = None) -> None:
        self.name = name
        self.help = help
        self.takes_value = takes_value
        self.required = required
        self.multiple = multiple
        self.default = default


ARG_SPECS: tuple[ArgSpec, ...] = (
    ArgSpec("id", "Jail ID.", required=True),
    ArgSpec("exec-file", "File path to exec into.", required=True),
    ArgSpec("uid", "The user identifier the jailer switches to after exec.", required=True),
    ArgSpec("gid", "The group identifier the jailer switches to after exec.", required=True),
    ArgSpec("chroot-base-dir", "The base folder where chroot jails are located.", default="/srv/jailer"),
    ArgSpec("netns", "Path to the network namespace this microVM should join."),
    ArgSpec("daemonize", "Daemonize the jailer before exec, by invoking setsid(), and redirecting "
            "the standard I/O file descriptors to /dev/null.", takes_value=False),
    ArgSpec("new-pid-ns", "Exec into a new PID namespace.", takes_value=False),
    ArgSpec("cgroup", "Cgroup and value to be set by the jailer. It must follow this format: "
            "<cgroup_file>=<value> (e.g cpu.shares=10). This argument can be used multiple times "
            "to add multiple cgroups.", multiple=True),
    ArgSpec("resource-limit", "Resource limit values to be set by the jailer. It must follow this "
            "format: <resource>=<value> (e.g no-file=1024). This argument can be used multiple "
            "times to add multiple resource limits. Current available resource values are: "
            "fsize: The maximum size in bytes for files created by the process. no-file: Specifies "
            "a value one greater than the maximum file descriptor number that can be opened by "
            "this process.", multiple=True),
    ArgSpec("cgroup-version", "Select the cgroup version used by the jailer.", default="1"),
    ArgSpec("parent-cgroup", "Parent cgroup in which the cgroup of this microvm will be placed."),
    ArgSpec("version", "Print the binary version number.", takes_value=False),
    # Stockade additions (not in Firecracker's jailer).
    ArgSpec("seccomp-policy", "Stockade: seccomp policy file (Firecracker seccompiler JSON) whose "
            "category is installed process-wide (all threads) as the last step before exec. "
            "Without it the shipped 'baseline' filter is installed."),
    ArgSpec("seccomp-category", "Stockade: category of --seccomp-policy to install.",
            default="jail"),
    ArgSpec("no-seccomp", "Stockade: install no outer seccomp filter (not even 'baseline'); a "
            "notice is printed on stderr.", takes_value=False),
    ArgSpec("ro-bind", "Stockade: SRC[:DST] read-only, nosuid, nodev bind mount of host path SRC "
            "at jail path DST (default: SRC). Repeatable.", multiple=True),
    ArgSpec("bind", "Stockade: SRC[:DST] read-write, nosuid, nodev bind mount of host path SRC at "
            "jail path DST (default: SRC). Repeatable.", multiple=True),
    ArgSpec("no-userfaultfd", "Stockade: do not create /dev/userfaultfd in the jail (it lets the "
            "jail's uid handle kernel-mode page faults; only UFFD snapshot restore needs it).",
            takes_value=False),
    ArgSpec("python-runtime", "Stockade: read-only binds of the Python runtime Stockade's vmm "
            "needs (interpreter, its shared libraries, stdlib, packages, libseccomp).",
            takes_value=False),
)
SPECS_BY_NAME = {spec.name: spec for spec in ARG_SPECS}
HELP_SPEC = ArgSpec("help", "Show the help message.", takes_value=False)

EPILOGUE = "Any arguments after the -- separator will be supplied to the jailed binary."


class ParsedArgs:
    """What the command line said: single values, flags, repeatable values, extra args."""

    def __init__(self, extra_args: list[str] | None = None) -> None:
        self.values: dict[str, str] = {}
        self.flags: set[str] = set()
        self.multiples: dict[str, list[str]] = {}
        self.extra_args: list[str] = extra_args or []
        self.help = False
        self.version = False

    def value(self, name: str) -> str | None:
        if name in self.values:
            return self.values[name]
        return SPECS_BY_NAME[name].default

    def flag(self, name: str) -> bool:
        return name in self.flags

    def multiple(self, name: str) -> list[str]:
        return self.multiples.get(name, [])


def _parse_error(detail: str) -> JailerError:
    return JailerError(ErrorKind.ARGUMENT_PARSING, detail=detail)


def parse_args(argv: list[str]) -> ParsedArgs:
    """Parse argv (without argv[0]); raise JailerError(ARGUMENT_PARSING) like the reference."""
    if "--" in argv:
        split = argv.index("--")
        own, extra = argv[:split], argv[split + 1:]
    else:
        own, extra = argv, []
    parsed = ParsedArgs(extra_args=list(extra))
    if "--help" in own or "-h" in own:
        parsed.help = True
        return parsed
    if "--version" in own:
        parsed.version = True
        return parsed

    index = 0
    while index < len(own):
        token = own[index]
        index += 1
        if not token.startswith("--"):
            raise _parse_error(f"Found argument '{token}' which wasn't expected, or isn't valid in this context.")
        name = token[2:]
        spec = SPECS_BY_NAME.get(name)
        if spec is None:
            raise _parse_error(f"Found argument '{name}' which wasn't expected, or isn't valid in this context.")
        if spec.takes_value:
            if index >= len(own) or own[index].startswith("--"):
                raise _parse_error(f"The argument '{name}' requires a value, but none was supplied.")
            value = own[index]
            index += 1
        else:
            value = None
        if spec.multiple:
            parsed.multiples.setdefault(name, []).append(value or "")
            continue
        if name in parsed.values or name in parsed.flags:
            raise _parse_error(f"The argument '{name}' was provided more than once.")
        if value is None:
            parsed.flags.add(name)
        else:
            parsed.values[name] = value

    for spec in sorted(ARG_SPECS, key=lambda s: s.name):
        if spec.required and spec.name not in parsed.values:
            raise _parse_error(f"Argument '{spec.name}' required, but not found.")
    return parsed


def _help_block(specs: list[ArgSpec]) -> list[str]:
    heads = [f"  --{s.name} <{s.name}>" if s.takes_value else f"  --{s.name}" for s in specs]
    width = max(len(head) for head in heads)
    lines = []
    for head, spec in zip(heads, specs):
        text = spec.help + (f' [default: "{spec.default}"]' if spec.default is not None else "")
        lines.append(f"{head:<{width}}   {text}")
    return lines


def help_text(version: str) -> str:
    """The help screen in the reference's layout: required block, optional block, epilogue."""
    required = sorted((s for s in ARG_SPECS if s.required), key=lambda s: s.name)
    optional = sorted([*(s for s in ARG_SPECS if not s.required), HELP_SPEC], key=lambda s: s.name)
    return (
        f"Jailer v{version}\n\n"
        "required arguments:\n" + "\n".join(_help_block(required)) + "\n\n"
        "optional arguments:\n" + "\n".join(_help_block(optional)) + "\n\n"
        f"{EPILOGUE}\n\n"
    )
