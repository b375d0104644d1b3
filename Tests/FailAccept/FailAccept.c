// FailAccept: runs a program whose accept(2) and accept4(2) calls fail with ENFILE or ENOMEM,
// for a while or for good, the way a system out of file descriptors or kernel memory answers
// them (or with EPERM, an error about one connection, as a firewall rule would). A test helper
// (see Tests/TorusTests/AcceptErrorTests.swift), not an example.
//
//   FailAccept enfile|enomem|eperm [--failures N] [--until-signal] PROGRAM [ARGUMENT ...]
//
//   enfile          the calls fail with ENFILE (the system-wide table of open files is full)
//   enomem          they fail with ENOMEM (the kernel could not allocate the socket)
//   eperm           they fail with EPERM (accept(2): "firewall rules forbid connection")
//   --failures N    the first N calls fail, later ones go through
//   --until-signal  the calls fail until the helper gets SIGUSR1 (its process id is on the
//                   first line it prints); with --failures too, until both have happened
//   neither         every call fails, for as long as the program runs
//
// A classic seccomp filter could only fail the calls for good (SECCOMP_RET_ERRNO is fixed when
// the filter is installed). This one answers SECCOMP_RET_USER_NOTIF instead: the kernel stops
// each accept and asks a supervisor, which replies with the error or lets the call go ahead
// unchanged (SECCOMP_USER_NOTIF_FLAG_CONTINUE). So a test can show a server recovering.
//
// How: the helper installs the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER, which returns the
// descriptor notifications are read from, then forks. The child is the supervisor; the parent
// execs PROGRAM, so PROGRAM keeps the helper's process id (a test signals it, waits for it and
// reads its descriptors directly). The supervisor is under the filter too (filters are
// inherited) but makes no accept call; it ends when PROGRAM does (a pidfd tells it).
//
// Seccomp sees system calls only: accepts that io_uring performs (IORING_OP_ACCEPT) never pass
// through the filter. Run the program on an engine that calls accept4 itself (epoll).
//
// The filter is classic BPF written by hand, like Tests/DenyIOUring's (no libseccomp). It
// checks the architecture first, since the call numbers differ between architectures: only
// this program's own architecture is let through, and x32 calls (the same numbers as x86_64,
// with __X32_SYSCALL_BIT set) are matched too. Any other architecture value (a 32-bit compat
// call) kills the process: such a call is a surprise, and the helper would not fail it.
//
// Before exec'ing PROGRAM, the helper checks that the supervisor answers: it calls accept4 on
// descriptor -1 (EBADF without the filter), which the supervisor fails with the chosen errno
// and does not count.
//
// Exit status: PROGRAM's, or 125 if the filter or the supervisor could not be set up or did
// not work, or 127 if PROGRAM could not be executed.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "FailAccept knows the audit architecture of x86_64 and aarch64 only"
#endif

enum { x32_syscall_bit = 0x40000000 };

/// What the supervisor was asked to do.
struct plan {
    int error;            // the errno the calls fail with
    const char *name;     // its name, for messages
    long failures;        // fail at least this many calls (LONG_MAX: all of them)
    int until_signal;     // and keep failing until SIGUSR1
};

static int usage(void) {
    fprintf(stderr, "usage: FailAccept enfile|enomem|eperm [--failures N] [--until-signal] PROGRAM [ARGUMENT ...]\n");
    return 125;
}

// Installs the filter: accept and accept4 go to the supervisor, everything else is allowed.
// Returns the notification descriptor (close-on-exec), or -1.
static int install_filter(void) {
    struct sock_filter instructions[] = {
        // [0] A = architecture
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        // [1] this program's architecture: to [3]
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_AUDIT_ARCH, 1, 0),
        // [2] anything else
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        // [3] A = system call number, without the x32 bit (no aarch64 number has it)
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~(unsigned int)x32_syscall_bit),
        // [5] accept4: to [8]
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_accept4, 2, 0),
        // [6] accept: to [8]
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_accept, 1, 0),
        // [7] everything else
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        // [8] accept or accept4: ask the supervisor
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    struct sock_fprog program = {
        .len = sizeof(instructions) / sizeof(instructions[0]),
        .filter = instructions,
    };
    // Without CAP_SYS_ADMIN the kernel accepts a filter only from a process that can gain no
    // privileges; as root it does no harm.
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fprintf(stderr, "FailAccept: prctl(PR_SET_NO_NEW_PRIVS) failed: %s\n", strerror(errno));
        return -1;
    }
    int listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &program);
    if (listener < 0) {
        fprintf(stderr, "FailAccept: seccomp(SECCOMP_SET_MODE_FILTER) failed: %s\n", strerror(errno));
        return -1;
    }
    return listener;
}

// The supervisor: answers every stopped accept until `program` exits. Never returns.
static void supervise(int listener, pid_t program, const struct plan *plan) {
    int pidfd = (int)syscall(SYS_pidfd_open, program, 0);
    if (pidfd < 0) {
        fprintf(stderr, "FailAccept: pidfd_open failed: %s\n", strerror(errno));
        _exit(125);
    }
    // SIGUSR1 arrives as a readable signalfd, not as a handler between two ioctls.
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    int signals = signalfd(-1, &usr1, SFD_CLOEXEC);
    if (signals < 0) {
        fprintf(stderr, "FailAccept: signalfd failed: %s\n", strerror(errno));
        _exit(125);
    }
    struct seccomp_notif_sizes sizes;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0) {
        fprintf(stderr, "FailAccept: seccomp(SECCOMP_GET_NOTIF_SIZES) failed: %s\n", strerror(errno));
        _exit(125);
    }
    // The kernel's structures may be larger than this program's headers say.
    struct seccomp_notif *request = calloc(1, sizes.seccomp_notif);
    struct seccomp_notif_resp *response = calloc(1, sizes.seccomp_notif_resp);
    if (request == NULL || response == NULL) _exit(125);

    fprintf(stderr, "FailAccept: supervisor %d: accept and accept4 fail with %s (%s)", (int)getpid(), plan->name,
            strerror(plan->error));
    if (plan->failures != LONG_MAX) fprintf(stderr, " for the first %ld calls", plan->failures);
    if (plan->until_signal) fprintf(stderr, "%s until SIGUSR1", plan->failures != LONG_MAX ? " and" : "");
    fprintf(stderr, "\n");

    long failed = 0;
    int signalled = 0;
    int passing = 0;
    for (;;) {
        struct pollfd fds[] = {
            {.fd = listener, .events = POLLIN},
            {.fd = pidfd, .events = POLLIN},
            {.fd = signals, .events = POLLIN},
        };
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR) continue;
            _exit(125);
        }
        // The program has exited: nobody is left to answer for.
        if (fds[1].revents != 0) _exit(0);
        if (fds[2].revents & POLLIN) {
            struct signalfd_siginfo info;
            if (read(signals, &info, sizeof(info)) == sizeof(info)) signalled = 1;
        }
        if (fds[0].revents & (POLLHUP | POLLERR)) _exit(0);
        if (!(fds[0].revents & POLLIN)) continue;

        memset(request, 0, sizes.seccomp_notif);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, request) != 0) {
            // ENOENT: the caller went away (a signal, or the end) before its turn.
            continue;
        }
        memset(response, 0, sizes.seccomp_notif_resp);
        response->id = request->id;
        int probe = (int)request->data.args[0] == -1;
        int fail = probe || failed < plan->failures || (plan->until_signal && !signalled);
        if (fail) {
            response->error = -plan->error;
            if (!probe) failed += 1;
        } else {
            // The call goes ahead as if there were no filter.
            response->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
            if (!passing) {
                passing = 1;
                fprintf(stderr, "FailAccept: accept goes through again after %ld failures\n", failed);
            }
        }
        // ENOENT again if the caller was interrupted meanwhile: it will ask again.
        (void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, response);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    struct plan plan = {.failures = LONG_MAX, .until_signal = 0};
    if (strcmp(argv[1], "enfile") == 0) {
        plan.error = ENFILE;
        plan.name = "ENFILE";
    } else if (strcmp(argv[1], "enomem") == 0) {
        plan.error = ENOMEM;
        plan.name = "ENOMEM";
    } else if (strcmp(argv[1], "eperm") == 0) {
        plan.error = EPERM;
        plan.name = "EPERM";
    } else {
        return usage();
    }
    int index = 2;
    int counted = 0;
    for (; index < argc && strncmp(argv[index], "--", 2) == 0; index++) {
        if (strcmp(argv[index], "--failures") == 0 && index + 1 < argc) {
            char *end;
            errno = 0;
            long failures = strtol(argv[++index], &end, 10);
            if (errno != 0 || *end != '\0' || failures < 0) return usage();
            plan.failures = failures;
            counted = 1;
        } else if (strcmp(argv[index], "--until-signal") == 0) {
            plan.until_signal = 1;
        } else {
            return usage();
        }
    }
    if (index >= argc) return usage();
    // --until-signal alone: no count to reach besides the signal.
    if (plan.until_signal && !counted) plan.failures = 0;

    int listener = install_filter();
    if (listener < 0) return 125;
    pid_t program = getpid();
    pid_t supervisor = fork();
    if (supervisor < 0) {
        fprintf(stderr, "FailAccept: fork failed: %s\n", strerror(errno));
        return 125;
    }
    if (supervisor == 0) supervise(listener, program, &plan);
    close(listener);

    // The supervisor must answer, with the chosen errno.
    int rc = accept4(-1, NULL, NULL, SOCK_CLOEXEC);
    int seen = rc == -1 ? errno : 0;
    if (seen != plan.error) {
        fprintf(stderr, "FailAccept: under the filter, accept4(-1) returned %d (%s), not %s\n", rc,
                seen != 0 ? strerror(seen) : "no error", plan.name);
        kill(supervisor, SIGKILL);
        return 125;
    }

    execv(argv[index], argv + index);
    fprintf(stderr, "FailAccept: cannot execute %s: %s\n", argv[index], strerror(errno));
    return 127;
}
