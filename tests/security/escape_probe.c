/*
 * escape_probe: exec'd by a jailer as --exec-file; attempts ONE escape technique per invocation
 * and prints one JSON line on stdout:
 *
 *   {"technique": NAME, "outcome": "blocked"|"signal"|"escaped"|"attempted", "step": CALL,
 *    "errno": "EPERM", "errno_number": 1, "signal": "SIGSYS", "signal_number": 31, "details": TEXT}
 *
 * "blocked": the step failed with errno; "signal": the attempt was killed by a signal (a seccomp
 * kill, the OOM killer, SIGXFSZ); "escaped": the attempt did what it wanted (details = evidence);
 * "attempted": only the harness can judge (e.g. whether a host victim survived kill(-1)).
 *
 * Every attempt runs in a forked child so that a fatal signal is reported by the parent.
 *
 * argv: the jailer's own arguments (--id X --start-time-us X --start-time-cpu-us X
 * --parent-cpu-time-us X) come first and are skipped; then the technique name, then key=value
 * parameters from the harness: victim=PID (a host process outside the jail), marker=PATH (a
 * host file outside the jail), fd=N (an fd the harness opened before starting the jailer),
 * secret=NAME (an env var the harness set), port=N (a host loopback listener), path=PATH.
 * `list` prints every technique with its description.
 *
 * Run with privileges (as root outside a jail), it refuses every technique that would act on the
 * host itself (kill(-1), reboot, sethostname, ...): see safe_when_privileged().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/rtnetlink.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "../support/json_string.h"

extern char **environ;

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#define X32_SYSCALL_BIT 0x40000000L
#define I386_MOUNT 21
#define I386_SETUID32 213
#define I386_UNSHARE 310
#define ESCAPE_DIR "/run/escape"
#define STATUS_ESCAPED 42
#define STATUS_CONTAINED 43

/* ---------------------------------------------------------------- reporting */

static const char *technique_name = "";
static int report_fd = 1;
static int argc_params;
static char **params;


/* One JSON line, written with a single write(2) so a report is never torn. */
static void emit(const char *outcome, const char *step, int err, int sig, const char *details) {
    char *buffer = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buffer, &size);
    fputs("{\"technique\":", out);
    json_string_to(out, technique_name);
    fputs(",\"outcome\":", out);
    json_string_to(out, outcome);
    fputs(",\"step\":", out);
    json_string_to(out, step ? step : "");
    if (err) {
        const char *name = strerrorname_np(err);
        fputs(",\"errno\":", out);
        json_string_to(out, name ? name : "E?");
        fprintf(out, ",\"errno_number\":%d", err);
    }
    if (sig) {
        const char *name = sigabbrev_np(sig);
        char full[32];
        snprintf(full, sizeof full, "SIG%s", name ? name : "?");
        fputs(",\"signal\":", out);
        json_string_to(out, full);
        fprintf(out, ",\"signal_number\":%d", sig);
    }
    fputs(",\"details\":", out);
    json_string_to(out, details ? details : "");
    fputs("}\n", out);
    fclose(out);
    if (write(report_fd, buffer, size) < 0)
        _exit(3);
    free(buffer);
}

static void blocked(const char *step, int err, const char *details) {
    emit("blocked", step, err, 0, details);
    _exit(0);
}

/* Every call succeeded, yet nothing was gained (e.g. a chroot whose ".." stays in the jail). */
static void contained(const char *step, const char *details) {
    emit("blocked", step, 0, 0, details);
    _exit(0);
}

static void escaped(const char *step, const char *format, ...) {
    char details[512];
    va_list args;
    va_start(args, format);
    vsnprintf(details, sizeof details, format, args);
    va_end(args);
    emit("escaped", step, 0, 0, details);
    _exit(0);
}

static void attempted(const char *step, int err, const char *format, ...) {
    char details[512];
    va_list args;
    va_start(args, format);
    vsnprintf(details, sizeof details, format, args);
    va_end(args);
    emit("attempted", step, err, 0, details);
    _exit(0);
}

/* A call that must fail: report the errno it failed with, or that it succeeded. */
#define EXPECT_FAIL(step, call)                                                            \
    do {                                                                                   \
        errno = 0;                                                                         \
        long expect_fail_result = (long)(call);                                            \
        if (expect_fail_result < 0)                                                        \
            blocked(step, errno, NULL);                                                    \
        escaped(step, "%s returned %ld", step, expect_fail_result);                       \
    } while (0)

static const char *param(const char *key) {
    size_t length = strlen(key);
    for (int i = 0; i < argc_params; i++)
        if (strncmp(params[i], key, length) == 0 && params[i][length] == '=')
            return params[i] + length + 1;
    fprintf(stderr, "escape_probe: technique %s needs %s=...\n", technique_name, key);
    _exit(2);
}

static long param_long(const char *key) { return strtol(param(key), NULL, 10); }

/* The effective (or permitted) capability set of this process, as one 64-bit mask. */
static unsigned long long caps(int permitted) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0}};
    if (syscall(SYS_capget, &header, data) != 0)
        return 0;
    if (permitted)
        return ((unsigned long long)data[1].permitted << 32) | data[0].permitted;
    return ((unsigned long long)data[1].effective << 32) | data[0].effective;
}

static unsigned long long effective_caps(void) { return caps(0); }
static unsigned long long permitted_caps(void) { return caps(1); }

/* Run fn in a child; its exit status (STATUS_ESCAPED / STATUS_CONTAINED / other) is returned,
 * or -signal when it was killed. */
static int in_child(int (*fn)(void *), void *arg) {
    pid_t pid = fork();
    if (pid < 0)
        blocked("fork", errno, NULL);
    if (pid == 0)
        _exit(fn(arg));
    int status;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

/* ---------------------------------------------------------- chroot / paths */

static void make_escape_dir(void) {
    if (mkdir(ESCAPE_DIR, 0700) != 0 && errno != EEXIST)
        blocked("mkdir(/run/escape)", errno, NULL);
}

/* chroot into a subdirectory, then chdir("..") past the old root, then chroot("."). */
static void t_chroot_chdir_dotdot(void) {
    make_escape_dir();
    if (chroot(ESCAPE_DIR) != 0)
        blocked("chroot(/run/escape)", errno, NULL);
    for (int i = 0; i < 64; i++)
        if (chdir("..") != 0)
            break;
    if (chroot(".") != 0)
        blocked("chroot(.)", errno, NULL);
    struct stat info;
    if (stat(param("marker"), &info) == 0)
        escaped("stat(host marker)", "host marker %s visible after chroot escape", param("marker"));
    contained("stat(host marker)", "chroot succeeded but '..' stops at the pivoted root");
}

/* Regain CAP_SYS_CHROOT in a new user namespace, then the classic chroot + chdir("..") escape. */
static void t_userns_chroot_escape(void) {
    if (unshare(CLONE_NEWUSER) != 0)
        blocked("unshare(CLONE_NEWUSER)", errno, NULL);
    t_chroot_chdir_dotdot();
}

/* fchdir() to a host directory fd the harness left open when it started the jailer. */
static void t_fchdir_inherited_fd(void) {
    int fd = (int)param_long("fd");
    if (fchdir(fd) != 0)
        blocked("fchdir(inherited fd)", errno, NULL);
    struct stat info;
    if (stat(strrchr(param("marker"), '/') + 1, &info) == 0)
        escaped("fchdir(inherited fd)", "host directory reachable through fd %d", fd);
    contained("stat(marker relative to fd)", "fchdir worked but the marker is not there");
}

/* Read a host file through an fd the harness opened before starting the jailer. */
static void t_inherited_fd_read(void) {
    int fd = (int)param_long("fd");
    char buffer[64];
    ssize_t got = read(fd, buffer, sizeof buffer - 1);
    if (got < 0)
        blocked("read(inherited fd)", errno, NULL);
    escaped("read(inherited fd)", "read %zd bytes from inherited fd %d", got, fd);
}

/* Look for any open descriptor >= 3 the jailer failed to close. */
static void t_inherited_fd_scan(void) {
    for (int fd = 3; fd < 65536; fd++)
        if (fd != report_fd && fcntl(fd, F_GETFD) >= 0)
            escaped("fcntl(F_GETFD)", "fd %d is open in the jail", fd);
    blocked("fcntl(F_GETFD)", EBADF, "no descriptor >= 3 is open besides the report pipe");
}

/* Read a secret from the environment the harness gave the jailer. */
static void t_host_environment(void) {
    const char *secret = getenv(param("secret"));
    if (secret != NULL)
        escaped("getenv(secret)", "secret visible: %s", secret);
    int count = 0;
    for (char **entry = environ; entry && *entry; entry++)
        count++;
    if (count > 0)
        escaped("environ", "%d host environment variables visible, first: %.64s", count, environ[0]);
    contained("getenv(secret)", "environment is empty");
}

/* /proc/<host pid>/<link>/<marker>: mount proc first (what stops it is the result), then try anyway. */
static void proc_pid_link(const char *link) {
    char path[512];
    mkdir("/run/proc", 0700);
    int mount_errno = mount("proc", "/run/proc", "proc", 0, NULL) == 0 ? 0 : errno;
    const char *marker = param("marker");
    const char *tail = strcmp(link, "cwd") == 0 ? strrchr(marker, '/') + 1 : marker;
    if (strcmp(link, "root") == 0)
        tail++;
    const char *prefixes[] = {"/run/proc", "/proc"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%ld/%s/%s", prefixes[i], param_long("victim"), link, tail);
        int fd = open(path, O_RDONLY);
        if (fd >= 0)
            escaped("open(/proc/<host pid>/...)", "opened %s", path);
    }
    char details[600];
    snprintf(details, sizeof details, "then open(%s) failed: %s", path, strerrorname_np(errno));
    if (mount_errno)
        blocked("mount(proc)", mount_errno, details);
    blocked("open(/proc/<host pid>/...)", errno, details);
}

/* Reach a host file through /proc/<host pid>/root of a process outside the jail. */
static void t_proc_pid_root(void) { proc_pid_link("root"); }

/* Reach a host file through /proc/<host pid>/cwd of a process outside the jail. */
static void t_proc_pid_cwd(void) { proc_pid_link("cwd"); }

static int mount_proc_in_userns(void *unused) {
    (void)unused;
    mkdir("/run/proc", 0700);
    if (mount("proc", "/run/proc", "proc", 0, NULL) != 0)
        return 100 + errno;
    return STATUS_ESCAPED;
}

/* New user + mount + pid namespaces, then mount a proc instance as "root" of them. */
static void t_userns_mount_proc(void) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID) != 0)
        blocked("unshare(NEWUSER|NEWNS|NEWPID)", errno, NULL);
    int status = in_child(mount_proc_in_userns, NULL);
    if (status == STATUS_ESCAPED)
        escaped("mount(proc)", "proc mounted inside a new user namespace");
    if (status > 100)
        blocked("mount(proc)", status - 100, "in a new user namespace");
    attempted("fork", 0, "the child died with status %d", status);
}

/* Write kernel tunables through /proc/sys. */
static void t_proc_sys_write(void) {
    int fd = open("/proc/sys/kernel/core_pattern", O_WRONLY);
    if (fd < 0)
        blocked("open(/proc/sys/kernel/core_pattern)", errno, NULL);
    EXPECT_FAIL("write(core_pattern)", write(fd, "|/run/x", 7));
}

/* Write the hotplug helper through /sys. */
static void t_sys_write(void) {
    int fd = open("/sys/kernel/uevent_helper", O_WRONLY);
    if (fd < 0)
        blocked("open(/sys/kernel/uevent_helper)", errno, NULL);
    EXPECT_FAIL("write(uevent_helper)", write(fd, "/run/x", 6));
}

/* Mount a sysfs instance to get at /sys. */
static void t_mount_sysfs(void) {
    mkdir("/run/sys", 0700);
    EXPECT_FAIL("mount(sysfs)", mount("sysfs", "/run/sys", "sysfs", 0, NULL));
}

/* Point a symlink in the jail at a host path and follow it. */
static void t_symlink_host_path(void) {
    unlink("/run/link");
    if (symlink(param("marker"), "/run/link") != 0)
        blocked("symlink", errno, NULL);
    int fd = open("/run/link", O_RDONLY);
    if (fd >= 0)
        escaped("open(symlink to host path)", "host marker opened through a symlink");
    blocked("open(symlink to host path)", errno, NULL);
}

/* A symlink climbing with ../ past the jail root, then the host path. */
static void t_symlink_dotdot(void) {
    char target[600];
    snprintf(target, sizeof target, "../../../../../../../../../../../..%s", param("marker"));
    unlink("/run/dotdot");
    if (symlink(target, "/run/dotdot") != 0)
        blocked("symlink", errno, NULL);
    int fd = open("/run/dotdot", O_RDONLY);
    if (fd >= 0)
        escaped("open(../ symlink)", "host marker opened through %s", target);
    blocked("open(../ symlink)", errno, NULL);
}

/* Hard-link the root-owned pid file (the jailer writes it) to keep a handle on a root file. */
static void t_hardlink_root_file(void) {
    unlink("/run/pidlink");
    EXPECT_FAIL("link(root-owned pid file)", link(param("path"), "/run/pidlink"));
}

/* Replace the exec file in the jail by a symlink to a host file, for the jailer's next run to follow. */
static void t_plant_exec_symlink(void) {
    const char *exec_path = param("path");
    if (unlink(exec_path) != 0)
        blocked("unlink(exec file)", errno, NULL);
    if (symlink(param("marker"), exec_path) != 0)
        blocked("symlink(exec file -> host marker)", errno, NULL);
    attempted("symlink(exec file -> host marker)", 0, "planted; the harness re-runs the jailer");
}

static void replace_by_symlink(const char *jail_dir, const char *target) {
    char command_step[96];
    snprintf(command_step, sizeof command_step, "symlink(%s -> host dir)", jail_dir);
    /* Empty the jail folder first: the probe owns it and everything the jailer put in it. */
    if (strcmp(jail_dir, "/dev") == 0) {
        unlink("/dev/kvm");
        unlink("/dev/urandom");
        unlink("/dev/userfaultfd");
        unlink("/dev/net/tun");
        rmdir("/dev/net");
    }
    if (rmdir(jail_dir) != 0)
        blocked(command_step, errno, "could not remove the jail folder");
    if (symlink(target, jail_dir) != 0)
        blocked(command_step, errno, NULL);
}

/* Replace the jail's /run and /dev by symlinks to a host directory for the jailer's next run. */
static void t_plant_folder_symlinks(void) {
    char directory[512];
    snprintf(directory, sizeof directory, "%s", param("marker"));
    *strrchr(directory, '/') = 0;
    replace_by_symlink("/run", directory);
    replace_by_symlink("/dev", directory);
    attempted("symlink(/run, /dev -> host dir)", 0, "planted; the harness re-runs the jailer");
}

/* List another jail's directory by its host path. */
static void t_other_jail_dir(void) {
    int fd = open(param("path"), O_RDONLY | O_DIRECTORY);
    if (fd >= 0)
        escaped("open(other jail dir)", "opened %s", param("path"));
    blocked("open(other jail dir)", errno, NULL);
}

/* Open another jail's /dev/kvm by its host path. */
static void t_other_jail_kvm(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/dev/kvm", param("path"));
    int fd = open(path, O_RDWR);
    if (fd >= 0)
        escaped("open(other jail /dev/kvm)", "opened %s", path);
    blocked("open(other jail /dev/kvm)", errno, NULL);
}

/* Open a host device the jail does not provide (/dev/mem). */
static void t_open_dev_mem(void) {
    EXPECT_FAIL("open(/dev/mem)", open("/dev/mem", O_RDWR));
}

/* ------------------------------------------------------------------ mounts */

/* Mount a tmpfs. */
static void t_mount_tmpfs(void) {
    make_escape_dir();
    EXPECT_FAIL("mount(tmpfs)", mount("none", ESCAPE_DIR, "tmpfs", 0, NULL));
}

/* Bind-mount / somewhere to defeat a read-only remount or pivot. */
static void t_mount_bind(void) {
    make_escape_dir();
    EXPECT_FAIL("mount(/, MS_BIND)", mount("/", ESCAPE_DIR, NULL, MS_BIND, NULL));
}

/* Detach the jail's root mount to uncover what lies beneath. */
static void t_umount2_root(void) {
    EXPECT_FAIL("umount2(/, MNT_DETACH)", umount2("/", MNT_DETACH));
}

/* pivot_root again to swap roots. */
static void t_pivot_root(void) {
    EXPECT_FAIL("pivot_root(., .)", syscall(SYS_pivot_root, ".", "."));
}

/* Clone a mount tree with the new mount API (open_tree). */
static void t_open_tree(void) {
    EXPECT_FAIL("open_tree(/, OPEN_TREE_CLONE)", syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */));
}

/* Attach a mount elsewhere with move_mount. */
static void t_move_mount(void) {
    make_escape_dir();
    EXPECT_FAIL("move_mount", syscall(SYS_move_mount, AT_FDCWD, "/run", AT_FDCWD, ESCAPE_DIR, 0));
}

/* Create a filesystem context with fsopen. */
static void t_fsopen(void) {
    EXPECT_FAIL("fsopen(tmpfs)", syscall(SYS_fsopen, "tmpfs", 0));
}

/* ------------------------------------------------------------- namespaces */

static void report_new_userns(const char *step) {
    unsigned long long caps = effective_caps();
    if (caps)
        escaped(step, "CapEff=%#llx in a new user namespace", caps);
    contained(step, "new user namespace but no capabilities");
}

/* unshare(CLONE_NEWUSER) to regain a full capability set. */
static void t_unshare_newuser(void) {
    if (unshare(CLONE_NEWUSER) != 0)
        blocked("unshare(CLONE_NEWUSER)", errno, NULL);
    report_new_userns("unshare(CLONE_NEWUSER)");
}

/* After a clone with CLONE_NEWUSER: does the child hold capabilities in its new namespace? */
static void report_cloned_child(const char *step, long pid) {
    if (pid < 0)
        blocked(step, errno, NULL);
    if (pid == 0)
        _exit(effective_caps() ? STATUS_ESCAPED : STATUS_CONTAINED);
    int status;
    waitpid((pid_t)pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == STATUS_ESCAPED)
        escaped(step, "child has a full capability set in a new user namespace");
    contained(step, "child got no capabilities");
}

/* clone(CLONE_NEWUSER) to regain a full capability set in the child. */
static void t_clone_newuser(void) {
    report_cloned_child("clone(CLONE_NEWUSER)", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
}

/* clone3(CLONE_NEWUSER): the call seccomp cannot filter by flags. */
static void t_clone3_newuser(void) {
    struct {
        uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    } args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
    report_cloned_child("clone3(CLONE_NEWUSER)", syscall(SYS_clone3, &args, sizeof args));
}

/* unshare(CLONE_NEWNS) directly, without a user namespace. */
static void t_unshare_newns(void) {
    EXPECT_FAIL("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
}

/* unshare(CLONE_NEWNET) to leave the jail's network namespace. */
static void t_unshare_newnet(void) {
    EXPECT_FAIL("unshare(CLONE_NEWNET)", unshare(CLONE_NEWNET));
}

/* setns() into a host process's namespaces through a pidfd. */
static void t_setns_host(void) {
    long pidfd = syscall(SYS_pidfd_open, param_long("victim"), 0);
    if (pidfd < 0)
        blocked("pidfd_open(host pid)", errno, NULL);
    EXPECT_FAIL("setns(pidfd, CLONE_NEWNS|CLONE_NEWNET)", setns((int)pidfd, CLONE_NEWNS | CLONE_NEWNET));
}

/* ------------------------------------------------------------- processes */

/* ptrace-attach to a host process. */
static void t_ptrace_attach(void) {
    EXPECT_FAIL("ptrace(PTRACE_ATTACH, host pid)", syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, param_long("victim"), 0, 0));
}

/* Write into a host process's memory with process_vm_writev. */
static void t_process_vm_writev(void) {
    char byte = 0;
    struct iovec local = {&byte, 1}, remote = {(void *)0x400000, 1};
    EXPECT_FAIL("process_vm_writev(host pid)", process_vm_writev((pid_t)param_long("victim"), &local, 1, &remote, 1, 0));
}

/* Read a host process's memory with process_vm_readv. */
static void t_process_vm_readv(void) {
    char byte = 0;
    struct iovec local = {&byte, 1}, remote = {(void *)0x400000, 1};
    EXPECT_FAIL("process_vm_readv(host pid)", process_vm_readv((pid_t)param_long("victim"), &local, 1, &remote, 1, 0));
}

/* Steal fd 0 of a host process with pidfd_getfd. */
static void t_pidfd_getfd(void) {
    long pidfd = syscall(SYS_pidfd_open, param_long("victim"), 0);
    if (pidfd < 0)
        blocked("pidfd_open(host pid)", errno, NULL);
    EXPECT_FAIL("pidfd_getfd(host pid, 0)", syscall(SYS_pidfd_getfd, pidfd, 0, 0));
}

/* SIGKILL a host process by pid (the harness checks it survived). */
static void t_kill_host_pid(void) {
    EXPECT_FAIL("kill(host pid, SIGKILL)", kill((pid_t)param_long("victim"), SIGKILL));
}

/* kill(-1, SIGTERM): every process this uid may signal (the harness checks the victim survived). */
static void t_kill_all(void) {
    int result = kill(-1, SIGTERM);
    attempted("kill(-1, SIGTERM)", result < 0 ? errno : 0, "kill(-1) returned %d", result);
}

static int fork_bomb_child(void *unused) {
    (void)unused;
    enum { CAP = 4096 };
    static pid_t children[CAP];
    int count = 0;
    int err = 0;
    while (count < CAP) {
        pid_t pid = fork();
        if (pid < 0) {
            err = errno;
            break;
        }
        if (pid == 0) {
            pause();
            _exit(0);
        }
        children[count++] = pid;
    }
    for (int i = 0; i < count; i++)
        kill(children[i], SIGKILL);
    for (int i = 0; i < count; i++)
        waitpid(children[i], NULL, 0);
    char details[96];
    snprintf(details, sizeof details, "%d forks before the limit", count);
    if (err)
        emit("blocked", "fork", err, 0, details);
    else
        emit("escaped", "fork", 0, 0, details);
    return 0;
}

/* Fork until something stops it (capped at 4096 so a missing limit cannot hurt the host). */
static void t_fork_bomb(void) {
    in_child(fork_bomb_child, NULL);
    _exit(0);
}

/* Allocate and touch up to 1 GiB (the harness sets a much lower memory cgroup limit). */
static void t_memory_hog(void) {
    const size_t chunk = 16 << 20, total = 1024UL << 20;
    for (size_t used = 0; used < total; used += chunk) {
        char *block = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (block == MAP_FAILED)
            blocked("mmap", errno, NULL);
        memset(block, 0xa5, chunk);
    }
    escaped("memset", "touched %zu MiB", total >> 20);
}

/* Write a file past RLIMIT_FSIZE. */
static void t_file_size(void) {
    int fd = open("/run/big", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        blocked("open(/run/big)", errno, NULL);
    static char block[1 << 16];
    for (long written = 0; written < (long)param_long("bytes"); written += sizeof block)
        if (write(fd, block, sizeof block) < 0)
            blocked("write", errno, NULL);
    escaped("write", "wrote %ld bytes", param_long("bytes"));
}

/* Open descriptors until RLIMIT_NOFILE stops it (or the harness's ceiling is passed). */
static void t_fd_exhaustion(void) {
    long ceiling = param_long("ceiling");
    for (long count = 3; count <= ceiling + 8; count++)
        if (dup(0) < 0) {
            char details[64];
            snprintf(details, sizeof details, "%ld descriptors open", count);
            blocked("dup", errno, details);
        }
    escaped("dup", "more than %ld descriptors open", ceiling);
}

/* Raise RLIMIT_NOFILE above its hard limit. */
static void t_raise_rlimit(void) {
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_max += 1;
    limit.rlim_cur = limit.rlim_max;
    EXPECT_FAIL("setrlimit(RLIMIT_NOFILE, hard+1)", setrlimit(RLIMIT_NOFILE, &limit));
}

static int report_exec_child(void *path) {
    char *argv[] = {(char *)path, "__report_privileges", NULL};
    char *envp[] = {NULL};
    execve((char *)path, argv, envp);
    return 100 + errno;
}

/* execve a host binary (/bin/sh) after the hand-off. */
static void t_execve_host_binary(void) {
    int status = in_child(report_exec_child, "/bin/sh");
    if (status > 100)
        blocked("execve(/bin/sh)", status - 100, NULL);
    escaped("execve(/bin/sh)", "a host shell ran (status %d)", status);
}

/* execve a setuid-root binary bound into the jail, to regain root. */
static void t_execve_setuid_binary(void) {
    int status = in_child(report_exec_child, (void *)param("path"));
    if (status > 100)
        blocked("execve(setuid binary)", status - 100, NULL);
    if (status == STATUS_ESCAPED)
        escaped("execve(setuid binary)", "the setuid binary ran with euid 0 or capabilities");
    contained("execve(setuid binary)", "ran without euid 0 or capabilities");
}

/* execve this probe again, hoping the exec recomputes capabilities from the bounding set. */
static void t_execve_regain_caps(void) {
    int status = in_child(report_exec_child, (void *)param("path"));
    if (status > 100)
        blocked("execve(self)", status - 100, NULL);
    if (status == STATUS_ESCAPED)
        escaped("execve(self)", "capabilities or euid 0 after execve");
    contained("execve(self)", "no capabilities after execve");
}

/* -------------------------------------------------------- privileges */

/* setuid(0). */
static void t_setuid_root(void) { EXPECT_FAIL("setuid(0)", syscall(SYS_setuid, 0)); }

/* setgid(0). */
static void t_setgid_root(void) { EXPECT_FAIL("setgid(0)", syscall(SYS_setgid, 0)); }

/* setgroups([0]) to join the root group. */
static void t_setgroups_root(void) {
    gid_t groups[] = {0};
    EXPECT_FAIL("setgroups([0])", syscall(SYS_setgroups, 1, groups));
}

/* capset() to raise every capability. */
static void t_capset_all(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{~0u, ~0u, ~0u}, {~0u, ~0u, ~0u}};
    EXPECT_FAIL("capset(all)", syscall(SYS_capset, &header, data));
}

/* Clear the locked securebits with prctl(PR_SET_SECUREBITS, 0). */
static void t_prctl_securebits(void) { EXPECT_FAIL("prctl(PR_SET_SECUREBITS, 0)", prctl(PR_SET_SECUREBITS, 0, 0, 0, 0)); }

/* Raise CAP_SYS_ADMIN into the ambient set. */
static void t_prctl_ambient_raise(void) {
    EXPECT_FAIL("prctl(PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN)",
                prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0));
}

/* chown a jail file to root (then setuid it). */
static void t_chown_root(void) {
    int fd = open("/run/owned", O_WRONLY | O_CREAT, 0700);
    if (fd < 0)
        blocked("open(/run/owned)", errno, NULL);
    EXPECT_FAIL("fchown(file, 0, 0)", fchown(fd, 0, 0));
}

/* mknod a block device for the host disk (8:0). */
static void t_mknod_block(void) {
    unlink("/run/sda");
    EXPECT_FAIL("mknod(block 8:0)", mknod("/run/sda", S_IFBLK | 0600, makedev(8, 0)));
}

/* mknod /dev/mem (1:1). */
static void t_mknod_mem(void) {
    unlink("/run/mem");
    EXPECT_FAIL("mknod(char 1:1)", mknod("/run/mem", S_IFCHR | 0600, makedev(1, 1)));
}

/* open_by_handle_at with a guessed handle for inode 2 (the "shocker" escape). */
static void t_open_by_handle_at(void) {
    struct {
        unsigned int handle_bytes;
        int handle_type;
        unsigned char f_handle[8];
    } handle = {8, 1 /* FILEID_INO32_GEN */, {2, 0, 0, 0, 0, 0, 0, 0}};
    int mount_fd = open("/", O_RDONLY | O_DIRECTORY);
    if (mount_fd < 0)
        blocked("open(/)", errno, NULL);
    EXPECT_FAIL("open_by_handle_at(inode 2)", syscall(SYS_open_by_handle_at, mount_fd, &handle, O_RDONLY));
}

/* sethostname. */
static void t_sethostname(void) { EXPECT_FAIL("sethostname", sethostname("escaped", 7)); }

/* Set the system clock. */
static void t_clock_settime(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    EXPECT_FAIL("clock_settime(CLOCK_REALTIME)", clock_settime(CLOCK_REALTIME, &now));
}

/* reboot(CAD_OFF): the least harmful reboot command, still privileged. */
static void t_reboot(void) { EXPECT_FAIL("reboot(CAD_OFF)", syscall(SYS_reboot, 0xfee1dead, 672274793, 0 /* CAD_OFF */, 0)); }

/* swapon a jail file. */
static void t_swapon(void) { EXPECT_FAIL("swapon(/run/swap)", swapon("/run/swap", 0)); }

/* Turn on process accounting into a jail file. */
static void t_acct(void) { EXPECT_FAIL("acct(/run/acct)", acct("/run/acct")); }

/* ----------------------------------------------------- kernel attack surface */

/* add_key to the process keyring (kernel keyring attack surface). */
static void t_add_key(void) {
    EXPECT_FAIL("add_key(user)", syscall(SYS_add_key, "user", "stockade-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING));
}

/* keyctl(KEYCTL_JOIN_SESSION_KEYRING) to create a new keyring. */
static void t_keyctl_join(void) {
    EXPECT_FAIL("keyctl(JOIN_SESSION_KEYRING)", syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "stockade-probe"));
}

/* bpf(BPF_MAP_CREATE). */
static void t_bpf_map_create(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    EXPECT_FAIL("bpf(BPF_MAP_CREATE)", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
}

/* bpf(BPF_PROG_LOAD) of a trivial socket filter. */
static void t_bpf_prog_load(void) {
    struct bpf_insn program[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insns = (uintptr_t)program;
    attr.insn_cnt = 2;
    attr.license = (uintptr_t) "GPL";
    EXPECT_FAIL("bpf(BPF_PROG_LOAD)", syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr));
}

/* perf_event_open counting kernel events (side channels, a long CVE history). */
static void t_perf_event_open(void) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    EXPECT_FAIL("perf_event_open(kernel+user)", syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
}

/* io_uring_setup (a large, often-exploited kernel interface). */
static void t_io_uring_setup(void) {
    unsigned char params_buffer[120] = {0};
    EXPECT_FAIL("io_uring_setup(8)", syscall(SYS_io_uring_setup, 8, params_buffer));
}

/* userfaultfd able to handle kernel-mode faults (race-window widening for kernel exploits). */
static void t_userfaultfd(void) { EXPECT_FAIL("userfaultfd(kernel faults)", syscall(SYS_userfaultfd, O_CLOEXEC)); }

/* /dev/userfaultfd (which the jail provides): USERFAULTFD_IOC_NEW gives a userfaultfd that can
 * handle kernel-mode faults, which vm.unprivileged_userfaultfd=0 denies to the syscall. */
static void t_dev_userfaultfd(void) {
    int device = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (device < 0)
        blocked("open(/dev/userfaultfd)", errno, NULL);
    int uffd = ioctl(device, USERFAULTFD_IOC_NEW, O_CLOEXEC);
    if (uffd < 0)
        blocked("ioctl(USERFAULTFD_IOC_NEW)", errno, NULL);
    struct uffdio_api api = {.api = UFFD_API};
    if (ioctl(uffd, UFFDIO_API, &api) != 0)
        blocked("ioctl(UFFDIO_API)", errno, NULL);
    escaped("ioctl(USERFAULTFD_IOC_NEW)", "userfaultfd %d without UFFD_USER_MODE_ONLY (kernel faults)", uffd);
}

/* kexec_load a new kernel. */
static void t_kexec_load(void) { EXPECT_FAIL("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0)); }

/* init_module from memory. */
static void t_init_module(void) {
    static char image[64];
    EXPECT_FAIL("init_module", syscall(SYS_init_module, image, sizeof image, ""));
}

/* finit_module from a file descriptor. */
static void t_finit_module(void) {
    int fd = open("/run/module.ko", O_RDWR | O_CREAT, 0600);
    EXPECT_FAIL("finit_module", syscall(SYS_finit_module, fd, "", 0));
}

/* iopl(3): all I/O ports. */
static void t_iopl(void) { EXPECT_FAIL("iopl(3)", iopl(3)); }

/* ioperm on port 0x80. */
static void t_ioperm(void) { EXPECT_FAIL("ioperm(0x80)", ioperm(0x80, 1, 1)); }

/* TIOCSTI: push a command into the controlling terminal's input (the host's shell would run it). */
static void t_tiocsti(void) {
    if (!isatty(0))
        blocked("isatty(0)", ENOTTY, "stdin is not a terminal");
    const char *text = "#stockade-tiocsti\n";
    for (const char *p = text; *p; p++)
        if (ioctl(0, TIOCSTI, p) != 0)
            blocked("ioctl(0, TIOCSTI)", errno, NULL);
    escaped("ioctl(0, TIOCSTI)", "injected %zu bytes into the controlling terminal's input", strlen(text));
}

/* personality(READ_IMPLIES_EXEC): make every readable mapping executable. */
static void t_personality_read_implies_exec(void) {
    if (personality(READ_IMPLIES_EXEC) < 0)
        blocked("personality(READ_IMPLIES_EXEC)", errno, NULL);
    int now = personality(0xffffffff);
    if (now >= 0 && (now & READ_IMPLIES_EXEC))
        escaped("personality(READ_IMPLIES_EXEC)", "personality is now %#x", now);
    contained("personality(0xffffffff)", "flag did not stick");
}

/* An x32-ABI syscall (unshare | 0x40000000), bypassing filters written for the 64-bit numbers. */
static void t_x32_syscall(void) {
    EXPECT_FAIL("x32 unshare(CLONE_NEWUSER)", syscall(X32_SYSCALL_BIT | SYS_unshare, CLONE_NEWUSER));
}

static long int80(long number, long a, long b, long c) {
    long result;
    __asm__ volatile("int $0x80"
                     : "=a"(result)
                     : "a"(number), "b"(a), "c"(b), "d"(c)
                     : "memory", "r8", "r9", "r10", "r11");
    return result;
}

static void int80_expect_fail(const char *step, long result) {
    if (result < 0 && result > -4096)
        blocked(step, (int)-result, NULL);
    escaped(step, "%s returned %ld", step, result);
}

/* i386 unshare(CLONE_NEWUSER) through int 0x80, bypassing filters that only check x86_64. */
static void t_int80_unshare(void) {
    long result = int80(I386_UNSHARE, CLONE_NEWUSER, 0, 0);
    if (result == 0)
        report_new_userns("int 0x80 unshare(CLONE_NEWUSER)");
    int80_expect_fail("int 0x80 unshare(CLONE_NEWUSER)", result);
}

/* i386 setuid32(0) through int 0x80. */
static void t_int80_setuid(void) { int80_expect_fail("int 0x80 setuid32(0)", int80(I386_SETUID32, 0, 0, 0)); }

/* i386 mount through int 0x80 (a string in the low 4 GiB: the static binary's .rodata). */
static void t_int80_mount(void) {
    static const char source[] = "none", target[] = "/run", type[] = "tmpfs";
    long result;
    __asm__ volatile("int $0x80"
                     : "=a"(result)
                     : "a"(I386_MOUNT), "b"(source), "c"(target), "d"(type), "S"(0), "D"(0)
                     : "memory", "r8", "r9", "r10", "r11");
    int80_expect_fail("int 0x80 mount(tmpfs)", result);
}

/* ---------------------------------------------------------------- network */

/* TCP connect to a host loopback listener from the jail's network namespace. */
static void t_net_egress_tcp(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        blocked("socket(AF_INET)", errno, NULL);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)param_long("port"))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_FAIL("connect(127.0.0.1)", connect(fd, (struct sockaddr *)&address, sizeof address));
}

/* UDP datagram to a host loopback port from the jail's network namespace. */
static void t_net_egress_udp(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        blocked("socket(AF_INET)", errno, NULL);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)param_long("port"))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_FAIL("sendto(127.0.0.1)", sendto(fd, "x", 1, 0, (struct sockaddr *)&address, sizeof address));
}

/* AF_NETLINK route socket: create a network interface (RTM_NEWLINK dummy). */
static void t_netlink_newlink(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        blocked("socket(AF_NETLINK)", errno, NULL);
    struct {
        struct nlmsghdr header;
        struct ifinfomsg info;
        char attributes[64];
    } request;
    memset(&request, 0, sizeof request);
    struct rtattr *name = (struct rtattr *)request.attributes;
    name->rta_type = IFLA_IFNAME;
    name->rta_len = RTA_LENGTH(8);
    memcpy(RTA_DATA(name), "stk0esc", 8);
    struct rtattr *linkinfo = (struct rtattr *)(request.attributes + RTA_ALIGN(name->rta_len));
    linkinfo->rta_type = IFLA_LINKINFO;
    struct rtattr *kind = (struct rtattr *)RTA_DATA(linkinfo);
    kind->rta_type = IFLA_INFO_KIND;
    kind->rta_len = RTA_LENGTH(6);
    memcpy(RTA_DATA(kind), "dummy", 6);
    linkinfo->rta_len = RTA_LENGTH(RTA_ALIGN(kind->rta_len));
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof request.info) + RTA_ALIGN(name->rta_len) + linkinfo->rta_len;
    request.header.nlmsg_type = RTM_NEWLINK;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    request.info.ifi_family = AF_UNSPEC;
    if (send(fd, &request, request.header.nlmsg_len, 0) < 0)
        blocked("send(RTM_NEWLINK)", errno, NULL);
    char reply[1024];
    ssize_t got = recv(fd, reply, sizeof reply, 0);
    if (got < 0)
        blocked("recv(ack)", errno, NULL);
    struct nlmsghdr *answer = (struct nlmsghdr *)reply;
    if (answer->nlmsg_type == NLMSG_ERROR) {
        int err = -((struct nlmsgerr *)NLMSG_DATA(answer))->error;
        if (err)
            blocked("RTM_NEWLINK(dummy)", err, "netlink socket opened; the request was refused");
    }
    escaped("RTM_NEWLINK(dummy)", "created interface stk0esc");
}

/* AF_PACKET raw socket (sniff and forge frames). */
static void t_af_packet(void) { EXPECT_FAIL("socket(AF_PACKET, SOCK_RAW)", socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))); }

/* Raw IP socket (forge packets). */
static void t_raw_inet(void) { EXPECT_FAIL("socket(AF_INET, SOCK_RAW)", socket(AF_INET, SOCK_RAW, IPPROTO_RAW)); }

/* ------------------------------------------------------------------ table */

struct technique {
    const char *name;
    void (*run)(void);
    const char *description;
};

#define T(name, description) {#name, t_##name, description}
static const struct technique techniques[] = {
    T(chroot_chdir_dotdot, "chroot into a subdirectory, chdir(\"..\") past the old root, chroot(\".\")"),
    T(userns_chroot_escape, "regain CAP_SYS_CHROOT in a new user namespace, then chroot + chdir(\"..\")"),
    T(fchdir_inherited_fd, "fchdir() to a host directory fd left open by the caller"),
    T(inherited_fd_read, "read a host file through an fd left open by the caller"),
    T(inherited_fd_scan, "look for any descriptor >= 3 the jailer did not close"),
    T(host_environment, "read a secret from the caller's environment"),
    T(proc_pid_root, "mount proc, then /proc/<host pid>/root/<host file>"),
    T(proc_pid_cwd, "mount proc, then /proc/<host pid>/cwd/<host file>"),
    T(userns_mount_proc, "new user+mount+pid namespaces, then mount proc"),
    T(proc_sys_write, "write /proc/sys/kernel/core_pattern"),
    T(sys_write, "write /sys/kernel/uevent_helper"),
    T(mount_sysfs, "mount a sysfs instance"),
    T(symlink_host_path, "symlink in the jail to an absolute host path, then open it"),
    T(symlink_dotdot, "symlink climbing ../ past the jail root, then open it"),
    T(hardlink_root_file, "hard-link the root-owned pid file in the jail"),
    T(plant_exec_symlink, "replace the jail's exec file by a symlink to a host file for the next jailer run"),
    T(plant_folder_symlinks, "replace the jail's /run and /dev by symlinks to a host directory for the next jailer run"),
    T(other_jail_dir, "open another jail's directory by its host path"),
    T(other_jail_kvm, "open another jail's /dev/kvm by its host path"),
    T(open_dev_mem, "open /dev/mem"),
    T(mount_tmpfs, "mount a tmpfs"),
    T(mount_bind, "bind-mount / elsewhere"),
    T(umount2_root, "umount2(\"/\", MNT_DETACH) to uncover the host tree"),
    T(pivot_root, "pivot_root(\".\", \".\")"),
    T(open_tree, "open_tree(OPEN_TREE_CLONE) of /"),
    T(move_mount, "move_mount a tree elsewhere"),
    T(fsopen, "fsopen(\"tmpfs\")"),
    T(unshare_newuser, "unshare(CLONE_NEWUSER) to regain a full capability set"),
    T(clone_newuser, "clone(CLONE_NEWUSER) to regain a full capability set in the child"),
    T(clone3_newuser, "clone3(CLONE_NEWUSER), whose flags seccomp cannot inspect"),
    T(unshare_newns, "unshare(CLONE_NEWNS) without a user namespace"),
    T(unshare_newnet, "unshare(CLONE_NEWNET) to leave the jail's network namespace"),
    T(setns_host, "setns() into a host process's namespaces through a pidfd"),
    T(ptrace_attach, "ptrace(PTRACE_ATTACH) a host process"),
    T(process_vm_writev, "process_vm_writev into a host process"),
    T(process_vm_readv, "process_vm_readv from a host process"),
    T(pidfd_getfd, "pidfd_getfd: steal a host process's fd 0"),
    T(kill_host_pid, "kill(host pid, SIGKILL)"),
    T(kill_all, "kill(-1, SIGTERM): every process this uid may signal"),
    T(fork_bomb, "fork until something stops it"),
    T(memory_hog, "allocate and touch 1 GiB"),
    T(file_size, "write a file past RLIMIT_FSIZE"),
    T(fd_exhaustion, "open descriptors until RLIMIT_NOFILE stops it"),
    T(raise_rlimit, "raise RLIMIT_NOFILE above its hard limit"),
    T(execve_host_binary, "execve(\"/bin/sh\") after the hand-off"),
    T(execve_setuid_binary, "execve a setuid-root binary bound into the jail"),
    T(execve_regain_caps, "execve the probe again to recompute capabilities"),
    T(setuid_root, "setuid(0)"),
    T(setgid_root, "setgid(0)"),
    T(setgroups_root, "setgroups([0])"),
    T(capset_all, "capset() raising every capability"),
    T(prctl_securebits, "prctl(PR_SET_SECUREBITS, 0) to unlock securebits"),
    T(prctl_ambient_raise, "prctl(PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN)"),
    T(chown_root, "chown a jail file to root"),
    T(mknod_block, "mknod a block device for the host disk (8:0)"),
    T(mknod_mem, "mknod /dev/mem (1:1)"),
    T(open_by_handle_at, "open_by_handle_at with a guessed handle (the \"shocker\" escape)"),
    T(sethostname, "sethostname"),
    T(clock_settime, "set the system clock"),
    T(reboot, "reboot(LINUX_REBOOT_CMD_CAD_OFF)"),
    T(swapon, "swapon a jail file"),
    T(acct, "acct() into a jail file"),
    T(add_key, "add_key to the process keyring"),
    T(keyctl_join, "keyctl(KEYCTL_JOIN_SESSION_KEYRING)"),
    T(bpf_map_create, "bpf(BPF_MAP_CREATE)"),
    T(bpf_prog_load, "bpf(BPF_PROG_LOAD) of a socket filter"),
    T(perf_event_open, "perf_event_open counting kernel and user events"),
    T(io_uring_setup, "io_uring_setup"),
    T(userfaultfd, "userfaultfd handling kernel-mode faults"),
    T(dev_userfaultfd, "/dev/userfaultfd USERFAULTFD_IOC_NEW: a userfaultfd that handles kernel faults"),
    T(kexec_load, "kexec_load"),
    T(init_module, "init_module"),
    T(finit_module, "finit_module"),
    T(iopl, "iopl(3)"),
    T(ioperm, "ioperm(0x80)"),
    T(tiocsti, "TIOCSTI into the controlling terminal"),
    T(personality_read_implies_exec, "personality(READ_IMPLIES_EXEC)"),
    T(x32_syscall, "x32-ABI unshare (number | 0x40000000)"),
    T(int80_unshare, "i386 unshare(CLONE_NEWUSER) through int 0x80"),
    T(int80_setuid, "i386 setuid32(0) through int 0x80"),
    T(int80_mount, "i386 mount(tmpfs) through int 0x80"),
    T(net_egress_tcp, "TCP connect to a host loopback listener"),
    T(net_egress_udp, "UDP datagram to a host loopback port"),
    T(netlink_newlink, "AF_NETLINK: create a network interface"),
    T(af_packet, "AF_PACKET raw socket"),
    T(raw_inet, "raw IPv4 socket"),
};
#define TECHNIQUE_COUNT (sizeof techniques / sizeof techniques[0])

/* Mode used by the execve techniques: exit STATUS_ESCAPED when privileged after the exec. */
static int report_privileges(void) {
    return geteuid() == 0 || getegid() == 0 || permitted_caps() || effective_caps() ? STATUS_ESCAPED : STATUS_CONTAINED;
}

/* Run with privileges (euid 0 or any capability: not jailed), a technique would act on the host
 * itself: kill(-1) would signal every process, reboot/swapon/sethostname would change the host.
 * Only these, harmless to the host in a private mount namespace, may then run (the harness's
 * canaries, which check that escapes are detected at all). */
static int safe_when_privileged(const char *name) {
    static const char *const safe[] = {
        "chroot_chdir_dotdot", "fchdir_inherited_fd", "inherited_fd_read", "host_environment",
        "kill_host_pid", "mount_tmpfs", "setuid_root", "mknod_block",
    };
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (strcmp(name, safe[i]) == 0)
            return 1;
    return 0;
}

static int run_technique(void *technique) {
    ((const struct technique *)technique)->run();
    return 0;
}

int main(int argc, char **argv) {
    int first = 1;
    static const char *const jailer_options[] = {"--id", "--start-time-us", "--start-time-cpu-us",
                                                 "--parent-cpu-time-us"};
    while (first + 1 < argc) {
        int known = 0;
        for (size_t i = 0; i < sizeof jailer_options / sizeof jailer_options[0]; i++)
            known |= strcmp(argv[first], jailer_options[i]) == 0;
        if (!known)
            break;
        first += 2;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: escape_probe TECHNIQUE [key=value...] | list\n");
        return 2;
    }
    if (strcmp(argv[first], "__report_privileges") == 0)
        return report_privileges();
    if (strcmp(argv[first], "list") == 0) {
        for (size_t i = 0; i < TECHNIQUE_COUNT; i++)
            printf("%s\t%s\n", techniques[i].name, techniques[i].description);
        return 0;
    }
    technique_name = argv[first];
    params = argv + first + 1;
    argc_params = argc - first - 1;
    for (size_t i = 0; i < TECHNIQUE_COUNT; i++) {
        if (strcmp(techniques[i].name, technique_name) != 0)
            continue;
        if ((geteuid() == 0 || effective_caps() != 0) && !safe_when_privileged(technique_name)) {
            emit("refused", "", 0, 0, "the probe holds privileges: outside a jail this technique would hit the host");
            return 2;
        }
        /* The parent keeps only the report pipe; SIGTERM is ignored so kill(-1) cannot silence it. */
        signal(SIGTERM, SIG_IGN);
        int report[2];
        if (pipe(report) != 0)
            return 3;
        pid_t pid = fork();
        if (pid == 0) {
            close(report[0]);
            report_fd = report[1];
            signal(SIGTERM, SIG_DFL);
            _exit(run_technique((void *)&techniques[i]));
        }
        close(report[1]);
        char buffer[4096];
        size_t used = 0;
        ssize_t got;
        while (used < sizeof buffer - 1 && (got = read(report[0], buffer + used, sizeof buffer - 1 - used)) > 0)
            used += (size_t)got;
        int status = 0;
        waitpid(pid, &status, 0);
        if (used > 0) {
            fwrite(buffer, 1, used, stdout);
        } else if (WIFSIGNALED(status)) {
            emit("signal", "", 0, WTERMSIG(status), "the attempt was killed");
        } else {
            char details[64];
            snprintf(details, sizeof details, "no report; exit status %d", WEXITSTATUS(status));
            emit("attempted", "", 0, 0, details);
        }
        return 0;
    }
    fprintf(stderr, "escape_probe: unknown technique %s\n", technique_name);
    return 2;
}
