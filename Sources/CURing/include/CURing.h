// CURing: the only place Torus touches liburing.
//
// liburing.h defines _XOPEN_SOURCE 500, which changes how glibc declares some types (fd_set
// among them). Including the system headers first makes this module agree with Swift's Glibc
// module; including liburing first gives "fd_set defined differently" errors in Swift.
#ifndef TORUS_CURING_H
#define TORUS_CURING_H

#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <time.h>
#include <errno.h>

#if __has_include(<liburing.h>)
// The kernel's own header first: liburing's bundled copy has the same include guard and is
// then skipped. Otherwise a module that also sees swift-system's CSystem (which includes the
// kernel header) gets two different definitions of struct io_uring_sqe and fails to build.
#include <linux/io_uring.h>
#include <liburing.h>
#else
#error "Torus needs liburing: run `sudo apt-get install -y liburing-dev` (Debian/Ubuntu), or ./scripts/bootstrap.sh"
#endif

/// The ring set-up flags Torus asked for and got, and why set-up failed if it did.
typedef struct torus_ring_setup_result {
    /// 0 on success, else the errno of the last io_uring_setup attempt.
    int error;
    /// IORING_SETUP_* flags of the ring that was created.
    unsigned flags;
    /// IORING_FEAT_* bits the kernel reported.
    unsigned features;
} torus_ring_setup_result;

/// Creates `ring` with `entries` submission entries, trying the best flags first
/// (SUBMIT_ALL | SINGLE_ISSUER | DEFER_TASKRUN), then COOP_TASKRUN, then none,
/// falling back flag by flag only when the kernel answers EINVAL.
torus_ring_setup_result torus_ring_setup(unsigned entries, struct io_uring *ring);

/// Links the next submission to this one (`IOSQE_IO_LINK`), e.g. a linked timeout.
static inline void torus_sqe_link_next(struct io_uring_sqe *sqe) {
    sqe->flags |= IOSQE_IO_LINK;
}

/// Posts no completion for this request if it succeeds (Linux 5.17+).
static inline void torus_sqe_skip_success(struct io_uring_sqe *sqe) {
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/// Lets the kernel pick a buffer from provided-buffer group `group` for this request.
static inline void torus_sqe_select_buffer(struct io_uring_sqe *sqe, unsigned short group) {
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group;
}

/// Maps and registers a provided-buffer ring of `entries` (a power of two) for group `group`.
/// liburing 2.3 has no io_uring_setup_buf_ring, so this does its work. Returns NULL and sets
/// `*error` (an errno) on failure.
struct io_uring_buf_ring *torus_buf_ring_create(struct io_uring *ring, unsigned entries,
                                                unsigned short group, int *error);

/// Puts buffer `id` (`length` bytes at `address`) in the slot `offset` past the ring's tail;
/// the kernel sees it after torus_buf_ring_advance.
static inline void torus_buf_ring_add(struct io_uring_buf_ring *buffers, void *address,
                                      unsigned length, unsigned short id, unsigned entries,
                                      int offset) {
    io_uring_buf_ring_add(buffers, address, length, id, io_uring_buf_ring_mask(entries), offset);
}

/// Publishes `count` buffers added since the last advance.
static inline void torus_buf_ring_advance(struct io_uring_buf_ring *buffers, int count) {
    io_uring_buf_ring_advance(buffers, count);
}

/// Tell ThreadSanitizer that the calling thread acquires / releases the synchronization object
/// at `address` (`__tsan_acquire` / `__tsan_release`); no-ops in builds without it. For locks
/// whose hand-off it cannot see (see Sources/Torus/Support/AnnotatedMutex.swift).
void torus_tsan_acquire(void *address);
void torus_tsan_release(void *address);

/// accept4(2) without the peer's address: glibc declares accept4 only under _GNU_SOURCE,
/// which this header must not define (it would change how the system headers look to Swift).
int torus_accept4(int fd, int flags);

/// Names the calling thread (shown by top, ps, gdb); at most 15 bytes are kept.
void torus_set_thread_name(const char *name);

/// The calling thread's errno.
static inline int torus_errno(void) { return errno; }

#endif
