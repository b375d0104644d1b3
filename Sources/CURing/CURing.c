#define _GNU_SOURCE
#include <pthread.h>
#include "CURing.h"
#include <string.h>
#include <sys/mman.h>

torus_ring_setup_result torus_ring_setup(unsigned entries, struct io_uring *ring) {
    // Best first. TASKRUN_FLAG lets liburing see pending deferred work and enter the kernel
    // only when needed; it requires COOP_TASKRUN or DEFER_TASKRUN.
    static const unsigned candidates[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
            | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_CQSIZE,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG
            | IORING_SETUP_CQSIZE,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
        IORING_SETUP_CQSIZE,
        0,
    };
    torus_ring_setup_result result = { .error = EINVAL, .flags = 0, .features = 0 };
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        struct io_uring_params params;
        memset(&params, 0, sizeof(params));
        params.flags = candidates[i];
        // A larger completion queue absorbs bursts of multishot completions.
        params.cq_entries = entries * 4;
        int rc = io_uring_queue_init_params(entries, ring, &params);
        if (rc == 0) {
            result.error = 0;
            result.flags = params.flags;
            result.features = params.features;
            return result;
        }
        result.error = -rc;
        // Only an unknown flag is worth another try; EPERM, ENOSYS, ENOMEM are final.
        if (-rc != EINVAL) {
            return result;
        }
    }
    return result;
}

int torus_accept4(int fd, int flags) {
    return accept4(fd, NULL, NULL, flags);
}

void torus_set_thread_name(const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof(truncated) - 1);
    truncated[sizeof(truncated) - 1] = '\0';
    pthread_setname_np(pthread_self(), truncated);
}

struct io_uring_buf_ring *torus_buf_ring_create(struct io_uring *ring, unsigned entries,
                                                unsigned short group, int *error) {
    size_t size = entries * sizeof(struct io_uring_buf);
    void *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (memory == MAP_FAILED) {
        *error = errno;
        return NULL;
    }
    struct io_uring_buf_ring *buffers = memory;
    io_uring_buf_ring_init(buffers);
    struct io_uring_buf_reg registration;
    memset(&registration, 0, sizeof(registration));
    registration.ring_addr = (unsigned long)(uintptr_t)buffers;
    registration.ring_entries = entries;
    registration.bgid = group;
    int rc = io_uring_register_buf_ring(ring, &registration, 0);
    if (rc != 0) {
        munmap(memory, size);
        *error = -rc;
        return NULL;
    }
    return buffers;
}

// ThreadSanitizer's annotation interface, present only when this file is built with
// -fsanitize=thread (SwiftPM passes it to C targets under `swift build --sanitize=thread`).
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TORUS_THREAD_SANITIZER 1
#endif
#endif

#ifdef TORUS_THREAD_SANITIZER
void __tsan_acquire(void *address);
void __tsan_release(void *address);

void torus_tsan_acquire(void *address) { __tsan_acquire(address); }
void torus_tsan_release(void *address) { __tsan_release(address); }
#else
void torus_tsan_acquire(void *address) { (void)address; }
void torus_tsan_release(void *address) { (void)address; }
#endif
