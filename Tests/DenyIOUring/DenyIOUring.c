// DenyIOUring: runs a program with io_uring forbidden by a seccomp filter, the way a
// container's seccomp profile forbids it. A test helper (see
// Tests/TorusTests/IOUringUnavailableTests.swift), not an example.
//
//   DenyIOUring eperm|enosys|allow PROGRAM [ARGUMENT ...]
//
//   eperm   io_uring_setup, io_uring_enter and io_uring_register fail with EPERM, as under
//           Docker's default seccomp profile.
//   enosys  they fail with ENOSYS, as on a kernel built without io_uring.
//   allow   the same filter, letting them through: the control case, which shows that the
//           filter machinery alone does not stop the program.
//
// The filter is classic BPF written by hand, so nothing beyond the kernel headers is needed
// (no libseccomp). It checks the architecture first: x86_64 and aarch64 both number the three
// calls 425, 426 and 427 (the unified syscall table), and x32 programs use the same numbers
// with __X32_SYSCALL_BIT set under the x86_64 architecture value. Any other architecture value
// (a 32-bit compat call, say) kills the process: its numbers could mean anything, and a filter
// that guessed could let io_uring through.
//
// Before exec'ing PROGRAM, the helper calls io_uring_setup itself and checks that the filter
// answers as intended, so that a test cannot pass for the wrong reason.
//
// Exit status: PROGRAM's, or 125 if the filter could not be installed or did not work, or 127
// if PROGRAM could not be executed.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "DenyIOUring knows the io_uring system call numbers of x86_64 and aarch64 only"
#endif

enum {
    io_uring_setup_nr = 425,
    io_uring_register_nr = 427,
    x32_syscall_bit = 0x40000000,
};

static int usage(void) {
    fprintf(stderr, "usage: DenyIOUring eperm|enosys|allow PROGRAM [ARGUMENT ...]\n");
    return 125;
}

// Installs the filter: the io_uring calls get `action`, everything else is allowed.
static int install_filter(unsigned int action) {
    struct sock_filter instructions[] = {
        // [0] A = architecture
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        // [1] x86_64: to [4]
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 2, 0),
        // [2] aarch64: to [4]
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_AARCH64, 1, 0),
        // [3] anything else
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        // [4] A = system call number, without the x32 bit (no aarch64 number has it)
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~(unsigned int)x32_syscall_bit),
        // [6] below io_uring_setup: to [9]
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, io_uring_setup_nr, 0, 2),
        // [7] above io_uring_register: to [9]
        BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, io_uring_register_nr, 1, 0),
        // [8] io_uring_setup, io_uring_enter or io_uring_register
        BPF_STMT(BPF_RET | BPF_K, action),
        // [9]
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {
        .len = sizeof(instructions) / sizeof(instructions[0]),
        .filter = instructions,
    };
    // Without CAP_SYS_ADMIN the kernel accepts a filter only from a process that can gain no
    // privileges; as root it does no harm.
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fprintf(stderr, "DenyIOUring: prctl(PR_SET_NO_NEW_PRIVS) failed: %s\n", strerror(errno));
        return -1;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
        fprintf(stderr, "DenyIOUring: prctl(PR_SET_SECCOMP) failed: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    unsigned int action;
    int expected_errno;
    if (strcmp(argv[1], "eperm") == 0) {
        action = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
        expected_errno = EPERM;
    } else if (strcmp(argv[1], "enosys") == 0) {
        action = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);
        expected_errno = ENOSYS;
    } else if (strcmp(argv[1], "allow") == 0) {
        action = SECCOMP_RET_ALLOW;
        // io_uring_setup with 0 entries and no parameters reaches the kernel, which refuses
        // the entry count (EINVAL) before it reads the parameters (EFAULT on older kernels).
        expected_errno = 0;
    } else {
        return usage();
    }
    if (install_filter(action) != 0) return 125;

    // The filter must answer io_uring_setup as intended, and only that.
    long rc = syscall(io_uring_setup_nr, 0, NULL);
    int seen = rc == -1 ? errno : 0;
    int works = expected_errno != 0 ? seen == expected_errno : (seen == EINVAL || seen == EFAULT);
    if (!works) {
        fprintf(stderr, "DenyIOUring: under the %s filter, io_uring_setup returned %ld (%s)\n",
                argv[1], rc, seen != 0 ? strerror(seen) : "no error");
        return 125;
    }

    execv(argv[2], argv + 2);
    fprintf(stderr, "DenyIOUring: cannot execute %s: %s\n", argv[2], strerror(errno));
    return 127;
}
