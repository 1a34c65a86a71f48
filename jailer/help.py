"""The part of `jailer --help` that documents what Stockade adds to the reference's behaviour."""

HARDENING_HELP = """\
Stockade hardening (on by default, beyond Firecracker's jailer):
  - capabilities: bounding, inheritable and ambient sets emptied, effective and permitted
    emptied after the uid/gid switch (also for --uid 0), securebits NOROOT, NO_SETUID_FIXUP,
    KEEP_CAPS_LOCKED and NO_CAP_AMBIENT_RAISE set and locked; no_new_privs set.
  - new IPC and UTS namespaces; the jail's hostname is the jail id.
  - the caller's controlling terminal is given up before exec (no TIOCSTI into the operator's
    shell); the process keeps its process group and its stdio.
  - outer seccomp filter installed process-wide (TSYNC) as the last step before exec: the
    shipped 'baseline' (default allow; denies what no VMM needs), or --seccomp-policy's
    category; --no-seccomp installs none and says so on stderr.
  - fail closed: any failure after validation removes what this run created (the copied exec
    file, device nodes, pid file, directories, bind mount points, cgroup directories) and
    exits 1; validation failures create nothing.
    Failures after the privilege drop are undone by a root janitor process forked just before.
  - before the privilege drop the jailer checks that the exec file is executable by uid:gid,
    is an x86-64 ELF or #! script, and that its interpreter exists inside the jail.
  - errors are one line on stderr (no Rust-style second 'Error: ...' line); exit status 1.

"""
