/*
 * jail_probe: exec'd by the jailer as --exec-file; prints its own view of the jail as JSON.
 *
 * /proc is not mounted inside a jail, so everything here comes from system calls; what only
 * /proc shows (Seccomp_filters, namespace inodes, cgroups) the tests read from the host side
 * at /proc/<pid>/ while the probe waits (--wait).
 *
 * Probe options, anywhere in argv (the jailer's own --id ... arguments come first):
 *   --out PATH        write the JSON to PATH (inside the jail) instead of stdout
 *   --api-sock PATH   create and bind a unix socket at PATH (like a VMM's API socket)
 *   --write-bytes N   first write N bytes to /run/probe-fsize (an fsize rlimit below N kills
 *                     the probe with SIGXFSZ, as it would kill a VMM)
 *   --wait            after reporting, pause until a signal ends the process
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "json_string.h"

extern char **environ;

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_IS_SET 1
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

static FILE *out;

static void json_string(const char *s) {
    json_string_to(out, s);
}

static void key(const char *name) {
    json_string(name);
    fputc(':', out);
}

static void list_tree(const char *path, int depth, int *first) {
    DIR *dir = opendir(path);
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, ".."))
            continue;
        char child[4096];
        snprintf(child, sizeof child, "%s%s%s", path, strcmp(path, "/") ? "/" : "", entry->d_name);
        struct stat st;
        if (lstat(child, &st) != 0)
            continue;
        fputs(*first ? "" : ",", out);
        *first = 0;
        json_string(child);
        fprintf(out, ":{\"mode\":%u,\"uid\":%u,\"gid\":%u,\"rdev\":%lu}", st.st_mode, st.st_uid, st.st_gid,
                (unsigned long)st.st_rdev);
        if (S_ISDIR(st.st_mode) && depth > 1)
            list_tree(child, depth - 1, first);
    }
    closedir(dir);
}

static int errno_of(long result) { return result < 0 ? errno : 0; }

int main(int argc, char **argv) {
    const char *out_path = NULL, *sock_path = NULL;
    int wait = 0;
    long write_bytes = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out_path = argv[++i];
        else if (!strcmp(argv[i], "--api-sock") && i + 1 < argc)
            sock_path = argv[++i];
        else if (!strcmp(argv[i], "--write-bytes") && i + 1 < argc)
            write_bytes = atol(argv[++i]);
        else if (!strcmp(argv[i], "--wait"))
            wait = 1;
    }
    int write_errno = -1;
    if (write_bytes >= 0) {
        static char block[65536];
        int fd = open("/run/probe-fsize", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        write_errno = fd < 0 ? errno : 0;
        for (long done = 0; fd >= 0 && done < write_bytes;) {
            long chunk = write_bytes - done < (long)sizeof block ? write_bytes - done : (long)sizeof block;
            ssize_t n = write(fd, block, chunk);
            if (n <= 0) {
                write_errno = errno;
                break;
            }
            done += n;
        }
        if (fd >= 0)
            close(fd);
    }
    int sock_errno = -1;
    if (sock_path) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        strncpy(addr.sun_path, sock_path, sizeof addr.sun_path - 1);
        sock_errno = (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0) ? 0 : errno;
    }
    /* Syscalls the baseline filter denies, tried before anything can change the answer. */
    int clone3_errno = errno_of(syscall(SYS_clone3, NULL, 0));
    int io_uring_errno = errno_of(syscall(SYS_io_uring_setup, 1, NULL));

    out = stdout;
    if (out_path) {
        out = fopen(out_path, "w");
        if (!out)
            return 3;
    }
    fputc('{', out);
    key("pid"); fprintf(out, "%d,", getpid());
    key("ppid"); fprintf(out, "%d,", getppid());
    key("sid"); fprintf(out, "%d,", getsid(0));
    key("pgid"); fprintf(out, "%d,", getpgid(0));
    key("uid"); fprintf(out, "%u,", getuid());
    key("euid"); fprintf(out, "%u,", geteuid());
    key("gid"); fprintf(out, "%u,", getgid());
    key("egid"); fprintf(out, "%u,", getegid());
    gid_t groups[256];
    int ngroups = getgroups(256, groups);
    key("groups"); fputc('[', out);
    for (int i = 0; i < ngroups; i++)
        fprintf(out, "%s%u", i ? "," : "", groups[i]);
    fputs("],", out);

    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0}};
    syscall(SYS_capget, &header, data);
    unsigned long long bnd = 0, amb = 0;
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
            bnd |= 1ULL << cap;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
            amb |= 1ULL << cap;
    }
    key("CapInh"); fprintf(out, "%llu,", data[0].inheritable | (unsigned long long)data[1].inheritable << 32);
    key("CapPrm"); fprintf(out, "%llu,", data[0].permitted | (unsigned long long)data[1].permitted << 32);
    key("CapEff"); fprintf(out, "%llu,", data[0].effective | (unsigned long long)data[1].effective << 32);
    key("CapBnd"); fprintf(out, "%llu,", bnd);
    key("CapAmb"); fprintf(out, "%llu,", amb);
    key("NoNewPrivs"); fprintf(out, "%d,", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    key("Seccomp"); fprintf(out, "%d,", prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
    key("securebits"); fprintf(out, "%d,", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
    key("clone3_errno"); fprintf(out, "%d,", clone3_errno);
    key("io_uring_setup_errno"); fprintf(out, "%d,", io_uring_errno);
    key("api_sock_errno"); fprintf(out, "%d,", sock_errno);
    key("write_errno"); fprintf(out, "%d,", write_errno);

    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    key("RLIMIT_NOFILE"); fprintf(out, "[%lld,%lld],", (long long)limit.rlim_cur, (long long)limit.rlim_max);
    getrlimit(RLIMIT_FSIZE, &limit);
    key("RLIMIT_FSIZE"); fprintf(out, "[%lld,%lld],", (long long)limit.rlim_cur, (long long)limit.rlim_max);

    char cwd[4096];
    key("cwd"); json_string(getcwd(cwd, sizeof cwd) ? cwd : ""); fputc(',', out);
    struct utsname uts;
    uname(&uts);
    key("hostname"); json_string(uts.nodename); fputc(',', out);
    struct sigaction action;
    sigaction(SIGPIPE, NULL, &action);
    key("sigpipe_default"); fprintf(out, "%d,", action.sa_handler == SIG_DFL);
    sigaction(SIGXFSZ, NULL, &action);
    key("sigxfsz_default"); fprintf(out, "%d,", action.sa_handler == SIG_DFL);
    sigset_t mask;
    sigprocmask(SIG_SETMASK, NULL, &mask);
    key("sigmask_empty"); fprintf(out, "%d,", sigisemptyset(&mask));

    key("env"); fputc('[', out);
    for (char **e = environ; *e; e++) {
        fputs(e == environ ? "" : ",", out);
        json_string(*e);
    }
    fputs("],", out);
    key("argv"); fputc('[', out);
    for (int i = 0; i < argc; i++) {
        fputs(i ? "," : "", out);
        json_string(argv[i]);
    }
    fputs("],", out);
    key("fds"); fputc('[', out);
    int first = 1;
    for (int fd = 0; fd < 1024; fd++) {
        if (out_path && fd == fileno(out))
            continue;
        if (fcntl(fd, F_GETFD) != -1) {
            fprintf(out, "%s%d", first ? "" : ",", fd);
            first = 0;
        }
    }
    fputs("],", out);
    key("tree"); fputc('{', out);
    first = 1;
    list_tree("/", 3, &first);
    fputs("}}\n", out);
    fflush(out);
    if (out != stdout)
        fclose(out);
    if (wait)
        for (;;)
            pause();
    return 0;
}
