// c-uring-echo: a plain C liburing echo server, the physical reference for the Torus benchmarks.
//
//   c-uring-echo [--port P] [--host 127.0.0.1] [--buffers N] [--buffer-size BYTES]
//
// One thread, one ring (SINGLE_ISSUER | DEFER_TASKRUN, SUBMIT_ALL, registered ring fd).
// Multishot accept; one provided-buffer ring (registered with io_uring_register_buf_ring; the
// ring memory is mmapped here because liburing 2.3 has no io_uring_setup_buf_ring); one
// multishot recv per connection selecting buffers from it. Every received buffer is sent back
// as it is and returned to the buffer ring when its send completes. Each connection has at most
// one send in flight; further received buffers wait in a per-connection FIFO (bytes never
// reorder) and go out together in one sendmsg; a short send is continued from where it stopped.
// Buffers are 64 KiB, like the largest read of the Torus and SwiftNIO servers. A multishot recv that ends
// (no IORING_CQE_F_MORE) is re-armed; one that ended with ENOBUFS is re-armed when buffers
// come back. Prints "listening on PORT" once ready. SIGINT/SIGTERM end it.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#define BGID 0
#define SEND_IOV 16  // buffers gathered into one sendmsg

enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

static inline uint64_t make_ud(int op, int fd) { return ((uint64_t)op << 32) | (uint32_t)fd; }
static inline int ud_op(uint64_t ud) { return (int)(ud >> 32); }
static inline int ud_fd(uint64_t ud) { return (int)(uint32_t)ud; }

typedef struct {
    uint8_t open;
    uint8_t recv_armed;     // a multishot recv is outstanding
    uint8_t send_inflight;  // a send is outstanding
    uint8_t closing;        // error: drop queued data, close once nothing is outstanding
    uint8_t eof;            // peer finished sending: close once the queue is sent
    uint8_t waiting_bufs;   // recv ended with ENOBUFS: re-arm when buffers come back
    int32_t head, tail;     // FIFO of buffer ids to send (linked through buf_next)
    uint32_t sent;          // bytes of the head buffer already sent
    struct msghdr msg;      // the outstanding sendmsg, when more than one buffer is queued
    struct iovec iov[SEND_IOV];
} conn_t;

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static uint8_t *buf_base;
static unsigned nbufs = 2048;
static unsigned buf_size = 65536;
static int32_t *buf_next;
static uint32_t *buf_len;
static conn_t *conns;
static int max_fds;
static int listen_fd;
static int *rearm_list;
static int rearm_count;
static unsigned bufs_returned_since_rearm;

static struct io_uring_sqe *get_sqe(void) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    while (!sqe) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

static void arm_accept(void) {
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, make_ud(OP_ACCEPT, listen_fd));
}

static void arm_recv(int fd) {
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, make_ud(OP_RECV, fd));
    conns[fd].recv_armed = 1;
}

static void return_buffer(int bid) {
    io_uring_buf_ring_add(br, buf_base + (size_t)bid * buf_size, buf_size, (unsigned short)bid,
                          io_uring_buf_ring_mask(nbufs), 0);
    io_uring_buf_ring_advance(br, 1);
    bufs_returned_since_rearm++;
}

// Sends the queued buffers of `fd`: the head one (from offset `sent`) with send(), or up to
// SEND_IOV of them with one sendmsg() when more are queued.
static void submit_send(int fd) {
    conn_t *c = &conns[fd];
    int bid = c->head;
    struct io_uring_sqe *sqe = get_sqe();
    if (buf_next[bid] < 0) {
        io_uring_prep_send(sqe, fd, buf_base + (size_t)bid * buf_size + c->sent, buf_len[bid] - c->sent, MSG_NOSIGNAL);
    } else {
        int n = 0;
        for (int b = bid; b >= 0 && n < SEND_IOV; b = buf_next[b], n++) {
            uint32_t skip = b == bid ? c->sent : 0;
            c->iov[n].iov_base = buf_base + (size_t)b * buf_size + skip;
            c->iov[n].iov_len = buf_len[b] - skip;
        }
        memset(&c->msg, 0, sizeof c->msg);
        c->msg.msg_iov = c->iov;
        c->msg.msg_iovlen = (size_t)n;
        io_uring_prep_sendmsg(sqe, fd, &c->msg, MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data64(sqe, make_ud(OP_SEND, fd));
    c->send_inflight = 1;
}

static void maybe_close(int fd) {
    conn_t *c = &conns[fd];
    if (c->recv_armed || c->send_inflight) return;
    if (!c->closing && !(c->eof && c->head < 0)) return;
    while (c->head >= 0) {
        int bid = c->head;
        c->head = buf_next[bid];
        return_buffer(bid);
    }
    c->tail = -1;
    close(fd);
    memset(c, 0, sizeof *c);
    c->head = c->tail = -1;
}

static void fail_connection(int fd) {
    conn_t *c = &conns[fd];
    if (!c->closing) {
        c->closing = 1;
        // Ends the outstanding multishot recv (it completes with 0 or an error).
        if (c->recv_armed) shutdown(fd, SHUT_RDWR);
    }
    maybe_close(fd);
}

static void on_accept(struct io_uring_cqe *cqe) {
    if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept();
    int fd = cqe->res;
    if (fd < 0) {
        if (fd != -ECANCELED) fprintf(stderr, "c-uring-echo: accept: %s\n", strerror(-fd));
        return;
    }
    if (fd >= max_fds) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_t *c = &conns[fd];
    memset(c, 0, sizeof *c);
    c->open = 1;
    c->head = c->tail = -1;
    arm_recv(fd);
}

static void on_recv(struct io_uring_cqe *cqe) {
    int fd = ud_fd(cqe->user_data);
    conn_t *c = &conns[fd];
    int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more) c->recv_armed = 0;
    if (cqe->res > 0) {
        int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->closing) {
            return_buffer(bid);
        } else {
            buf_len[bid] = (uint32_t)cqe->res;
            buf_next[bid] = -1;
            if (c->tail >= 0) buf_next[c->tail] = bid;
            else c->head = bid;
            c->tail = bid;
            if (!c->send_inflight) {
                c->sent = 0;
                submit_send(fd);
            }
        }
        if (!more && !c->closing && !c->eof) arm_recv(fd);
    } else if (cqe->res == -ENOBUFS) {
        if (!more && !c->closing) {
            c->waiting_bufs = 1;
            rearm_list[rearm_count++] = fd;
        }
    } else if (cqe->res == 0) {
        c->eof = 1;  // send what is queued, then close
    } else if (!more) {
        fail_connection(fd);  // reset or another error
    }
    maybe_close(fd);
}

static void on_send(struct io_uring_cqe *cqe) {
    int fd = ud_fd(cqe->user_data);
    conn_t *c = &conns[fd];
    c->send_inflight = 0;
    if (cqe->res < 0) {
        fail_connection(fd);
        return;
    }
    // Retire the buffers that went out completely; a short send leaves the rest queued.
    uint32_t done = (uint32_t)cqe->res;
    while (c->head >= 0) {
        int bid = c->head;
        uint32_t rest = buf_len[bid] - c->sent;
        if (done < rest) {
            c->sent += done;
            break;
        }
        done -= rest;
        c->sent = 0;
        c->head = buf_next[bid];
        return_buffer(bid);
    }
    if (c->head < 0) c->tail = -1;
    if (c->head >= 0 && !c->closing) submit_send(fd);
    maybe_close(fd);
}

static void rearm_waiting(void) {
    if (rearm_count == 0 || bufs_returned_since_rearm == 0) return;
    int n = rearm_count;
    rearm_count = 0;
    for (int i = 0; i < n; i++) {
        int fd = rearm_list[i];
        conn_t *c = &conns[fd];
        if (!c->waiting_bufs) continue;
        c->waiting_bufs = 0;
        if (c->closing) {
            maybe_close(fd);
            continue;
        }
        arm_recv(fd);
    }
    bufs_returned_since_rearm = 0;
}

static void usage(const char *msg) {
    if (msg) fprintf(stderr, "c-uring-echo: %s\n", msg);
    fprintf(stderr, "usage: c-uring-echo [--port P] [--host 127.0.0.1] [--buffers N (power of 2)] [--buffer-size BYTES]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 7000;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage("missing value");
        const char *f = argv[i], *v = argv[++i];
        if (strcmp(f, "--port") == 0) port = atoi(v);
        else if (strcmp(f, "--host") == 0) host = v;
        else if (strcmp(f, "--buffers") == 0) nbufs = (unsigned)atoi(v);
        else if (strcmp(f, "--buffer-size") == 0) buf_size = (unsigned)atoi(v);
        else usage("unknown option");
    }
    if (port < 0 || port > 65535) usage("bad --port");
    if (nbufs == 0 || nbufs > 32768 || (nbufs & (nbufs - 1))) usage("--buffers must be a power of two <= 32768");
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    max_fds = (int)rl.rlim_cur;
    conns = calloc((size_t)max_fds, sizeof *conns);
    rearm_list = calloc((size_t)max_fds, sizeof *rearm_list);
    buf_next = calloc(nbufs, sizeof *buf_next);
    buf_len = calloc(nbufs, sizeof *buf_len);
    if (!conns || !rearm_list || !buf_next || !buf_len) {
        perror("c-uring-echo: calloc");
        return 1;
    }
    // conns[fd] is initialized on accept: its pages are touched only as descriptors are used,
    // so the idle-memory measurement sees the per-connection state.

    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
    p.cq_entries = 65536;
    int ret = io_uring_queue_init_params(4096, &ring, &p);
    if (ret < 0) {
        fprintf(stderr, "c-uring-echo: io_uring_queue_init_params: %s\n", strerror(-ret));
        return 1;
    }
    io_uring_register_ring_fd(&ring);

    // Provided-buffer ring: the ring of descriptors, then the buffers themselves.
    size_t ring_bytes = (size_t)nbufs * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    // Populated up front, so that RSS does not grow as buffers are first used (which would
    // count against each connection in the idle-memory measurement).
    buf_base = mmap(NULL, (size_t)nbufs * buf_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_POPULATE,
                    -1, 0);
    if (br == MAP_FAILED || buf_base == MAP_FAILED) {
        perror("c-uring-echo: mmap");
        return 1;
    }
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)br;
    reg.ring_entries = nbufs;
    reg.bgid = BGID;
    ret = io_uring_register_buf_ring(&ring, &reg, 0);
    if (ret < 0) {
        fprintf(stderr, "c-uring-echo: io_uring_register_buf_ring: %s\n", strerror(-ret));
        return 1;
    }
    for (unsigned i = 0; i < nbufs; i++)
        io_uring_buf_ring_add(br, buf_base + (size_t)i * buf_size, buf_size, (unsigned short)i,
                              io_uring_buf_ring_mask(nbufs), (int)i);
    io_uring_buf_ring_advance(br, (int)nbufs);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) usage("--host must be an IPv4 literal");
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listen_fd, 4096) != 0) {
        fprintf(stderr, "c-uring-echo: bind/listen %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(listen_fd, (struct sockaddr *)&addr, &len);
    arm_accept();
    printf("listening on %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    for (;;) {
        ret = io_uring_submit_and_wait(&ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            fprintf(stderr, "c-uring-echo: io_uring_submit_and_wait: %s\n", strerror(-ret));
            return 1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, count = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            count++;
            switch (ud_op(cqe->user_data)) {
            case OP_ACCEPT: on_accept(cqe); break;
            case OP_RECV: on_recv(cqe); break;
            case OP_SEND: on_send(cqe); break;
            }
        }
        io_uring_cq_advance(&ring, count);
        rearm_waiting();
    }
}
