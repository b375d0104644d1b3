// loadgen: an epoll echo load generator for the Torus benchmarks.
//
//   loadgen --port P [--host 127.0.0.1] [--connections N] [--size BYTES] [--inflight K]
//           [--warmup S] [--duration S] [--cpu C] [--server-pid PID] [--label TEXT]
//           [--framing none|line|length4]
//
// One thread, pinned to --cpu. Opens N TCP connections to a loopback echo server. Each
// connection sends messages of --size bytes; with --inflight 1 it waits for the full echo of a
// message before sending the next (ping-pong), with K > 1 it keeps K messages outstanding
// (pipelined). Every echoed byte is compared with what was sent: message m of connection c is
// a window, starting at offset (m * 7) % 251, of a pseudo-random pattern seeded by c, so lost,
// duplicated, reordered or corrupted bytes all show up as errors.
//
// --framing makes each message a frame for a framed echo server; --size stays the whole wire
// size of a message, so throughput compares with the unframed runs:
//   none     (default) the message is the pattern window itself, as above.
//   line     SIZE - 1 printable bytes of the window (the pattern is then made of 0x20...0x7E,
//            so it never holds '\n' or '\r'), then '\n'.
//   length4  a 4-byte big-endian length (SIZE - 4), then SIZE - 4 bytes of the window.
// The echo must be byte for byte what was sent, framing included.
//
// Latency is measured per message from the moment its first byte was handed to the kernel to
// the moment its last echoed byte was read, into a log-bucketed histogram (about 1.5%
// precision). After --warmup seconds the counters are reset and the measured window of
// --duration seconds starts. The generator's own CPU time (getrusage) and, with --server-pid,
// the server's CPU time (utime + stime from /proc/PID/stat, all threads) are read at the
// exact start and end of that window.
//
// Output: one machine-readable line starting with "RESULT " (key=value pairs) and one human
// line. Exit status: 0 if the window completed with messages and no errors, 1 otherwise,
// 2 on a usage error.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PATTERN_SLACK 256   // the pattern is size + PATTERN_SLACK bytes long
#define OFFSET_MOD 251      // message m starts at (m * 7) % OFFSET_MOD in the pattern
#define MAX_IOV 64

enum framing { FRAMING_NONE, FRAMING_LINE, FRAMING_LENGTH4 };

// ---------------------------------------------------------------------------------------------
// Histogram: values in nanoseconds, 64 linear sub-buckets per power of two (HdrHistogram-like).

#define SUB_BITS 6
#define SUB_COUNT (1 << SUB_BITS)
#define HIST_BUCKETS (64 * SUB_COUNT)

typedef struct {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max;
} histogram;

static inline unsigned hist_index(uint64_t v) {
    if (v < 2 * SUB_COUNT) return (unsigned)v;
    unsigned msb = 63 - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS;
    return shift * SUB_COUNT + (unsigned)(v >> shift);
}

static inline uint64_t hist_value(unsigned index) {
    if (index < 2 * SUB_COUNT) return index;
    unsigned shift = index / SUB_COUNT - 1;
    uint64_t sub = index - shift * SUB_COUNT;  // in [SUB_COUNT, 2 * SUB_COUNT)
    // midpoint of the bucket
    return (sub << shift) + ((1ULL << shift) >> 1);
}

static inline void hist_record(histogram *h, uint64_t v) {
    h->counts[hist_index(v)]++;
    h->total++;
    if (v > h->max) h->max = v;
}

static uint64_t hist_percentile(const histogram *h, double p) {
    if (h->total == 0) return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->total + 0.5);
    if (rank < 1) rank = 1;
    if (rank > h->total) rank = h->total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

// ---------------------------------------------------------------------------------------------

typedef struct {
    int fd;
    int index;
    int dead;
    int want_out;           // EPOLLOUT is armed
    uint8_t *pattern;       // size + PATTERN_SLACK bytes
    size_t send_off;        // bytes of message (next_send) already written
    uint64_t next_send;     // message being written
    uint64_t recv_msgs;     // messages fully echoed
    size_t recv_off;        // bytes of message recv_msgs received so far
    uint64_t *send_time;    // ring of inflight timestamps (ns), indexed by message % inflight
    uint64_t window_msgs;   // messages completed in the measured window
} connection;

static struct {
    const char *host;
    int port;
    int connections;
    size_t size;
    int inflight;
    double warmup;
    double duration;
    int cpu;
    int server_pid;
    const char *label;
    enum framing framing;
} opt = {"127.0.0.1", 0, 1, 64, 1, 1.0, 3.0, -1, 0, "", FRAMING_NONE};

// The 4-byte big-endian length prefix of every message with --framing length4 (all messages
// have the same size, so one header serves them all).
static uint8_t length_header[4];
static const uint8_t newline = '\n';

static histogram hist;
static uint64_t errors;          // mismatched bytes
static uint64_t verified_bytes;  // echoed bytes compared equal, measured window only
static uint64_t window_msgs;
static uint64_t closed_conns;    // connections the server closed or reset before the end
static int measuring;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

// utime + stime of a whole process (all threads), in seconds; -1 if unreadable.
static double cpu_seconds_of(int pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');  // the command name may contain spaces
    if (!p) return -1;
    // After ")": state(3) ppid(4) ... utime(14) stime(15)
    unsigned long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

// Busy and softirq time of the whole machine (all CPUs), in seconds, from /proc/stat.
static void machine_cpu(double *busy, double *softirq) {
    *busy = *softirq = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    unsigned long long user, nice, system, idle, iowait, irq, sirq, steal;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle, &iowait, &irq, &sirq,
               &steal) == 8) {
        double tick = (double)sysconf(_SC_CLK_TCK);
        *busy = (double)(user + nice + system + irq + sirq + steal) / tick;
        *softirq = (double)(irq + sirq) / tick;
    }
    fclose(f);
}

// Fills the pattern of one connection; printable (0x20...0x7E) for line framing, so that no
// byte of a line's body is a line ending.
static void fill_pattern(uint8_t *p, size_t n, uint64_t seed, int printable) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    for (size_t i = 0; i < n; i++) {
        // splitmix64
        x += 0x9E3779B97F4A7C15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        p[i] = printable ? (uint8_t)(0x20 + z % 95) : (uint8_t)z;
    }
}

static inline const uint8_t *message_bytes(const connection *c, uint64_t m) {
    return c->pattern + (m * 7) % OFFSET_MOD;
}

// The bytes of message m from offset off on, as far as they are contiguous: sets *p and
// returns how many (at least 1 while off < size). A message is the pattern window alone
// (no framing), the window then '\n' (line), or the length header then the window
// (length4); sending and checking both walk a message with this, segment by segment.
static inline size_t message_segment(const connection *c, uint64_t m, size_t off, const uint8_t **p) {
    switch (opt.framing) {
    case FRAMING_LINE:
        if (off < opt.size - 1) {
            *p = message_bytes(c, m) + off;
            return opt.size - 1 - off;
        }
        *p = &newline;
        return 1;
    case FRAMING_LENGTH4:
        if (off < 4) {
            *p = length_header + off;
            return 4 - off;
        }
        *p = message_bytes(c, m) + (off - 4);
        return opt.size - off;
    default:
        *p = message_bytes(c, m) + off;
        return opt.size - off;
    }
}

static int epfd;

static void kill_connection(connection *c, const char *why, int err) {
    if (c->dead) return;
    c->dead = 1;
    closed_conns++;
    fprintf(stderr, "loadgen: connection %d: %s%s%s\n", c->index, why, err ? ": " : "", err ? strerror(err) : "");
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static void set_want_out(connection *c, int want) {
    if (c->want_out == want || c->dead) return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

// Writes as much as allowed: messages up to recv_msgs + inflight, in one writev.
static void pump_send(connection *c) {
    if (c->dead) return;
    for (;;) {
        uint64_t limit = c->recv_msgs + (uint64_t)opt.inflight;
        if (c->next_send >= limit) {
            set_want_out(c, 0);
            return;
        }
        struct iovec iov[MAX_IOV];
        int n = 0;
        uint64_t m = c->next_send;
        size_t off = c->send_off;
        size_t requested = 0;
        // Whole messages only (a framed one takes up to two vectors); a message cut short by
        // the vector limit goes out in the next writev.
        int per_message = opt.framing == FRAMING_NONE ? 1 : 2;
        while (m < limit && n + per_message <= MAX_IOV) {
            while (off < opt.size) {
                const uint8_t *p;
                size_t len = message_segment(c, m, off, &p);
                iov[n].iov_base = (void *)p;
                iov[n].iov_len = len;
                requested += len;
                off += len;
                n++;
            }
            m++;
            off = 0;
        }
        uint64_t t = now_ns();
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_want_out(c, 1);
                return;
            }
            kill_connection(c, "write failed", errno);
            return;
        }
        // Stamp every message whose first byte went out in this write.
        size_t left = (size_t)w;
        while (left > 0) {
            if (c->send_off == 0) c->send_time[c->next_send % (uint64_t)opt.inflight] = t;
            size_t rest = opt.size - c->send_off;
            if (left >= rest) {
                left -= rest;
                c->send_off = 0;
                c->next_send++;
            } else {
                c->send_off += left;
                left = 0;
            }
        }
        if ((size_t)w < requested) {
            // Short write: the socket buffer is full; wait for EPOLLOUT.
            set_want_out(c, 1);
            return;
        }
    }
}

static uint8_t *scratch;
static size_t scratch_size;

static void count_mismatches(const uint8_t *got, const uint8_t *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) errors++;
}

static void handle_readable(connection *c) {
    for (;;) {
        ssize_t r = read(c->fd, scratch, scratch_size);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            kill_connection(c, "read failed", errno);
            return;
        }
        if (r == 0) {
            kill_connection(c, "server closed the connection", 0);
            return;
        }
        uint64_t t = now_ns();
        const uint8_t *p = scratch;
        size_t left = (size_t)r;
        while (left > 0) {
            size_t sent = c->recv_msgs < c->next_send ? opt.size : c->send_off;
            if (c->recv_off >= sent) {
                // More bytes than were sent.
                errors += left;
                fprintf(stderr, "loadgen: connection %d: %zu unexpected bytes\n", c->index, left);
                kill_connection(c, "protocol error", 0);
                return;
            }
            size_t want = sent - c->recv_off;
            const uint8_t *expected;
            size_t segment = message_segment(c, c->recv_msgs, c->recv_off, &expected);
            if (want > segment) want = segment;  // compare one contiguous segment at a time
            size_t n = left < want ? left : want;
            if (memcmp(p, expected, n) != 0) count_mismatches(p, expected, n);
            else if (measuring) verified_bytes += n;
            p += n;
            left -= n;
            c->recv_off += n;
            if (c->recv_off == opt.size) {  // the whole message is back
                uint64_t sent_at = c->send_time[c->recv_msgs % (uint64_t)opt.inflight];
                c->recv_off = 0;
                c->recv_msgs++;
                if (measuring) {
                    hist_record(&hist, t - sent_at);
                    c->window_msgs++;
                    window_msgs++;
                }
            }
        }
        if ((size_t)r < scratch_size) break;  // drained (a further read would be EAGAIN)
    }
    pump_send(c);
}

static int is_loopback(const char *host, struct sockaddr_storage *ss, socklen_t *len) {
    memset(ss, 0, sizeof *ss);
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)opt.port);
        *len = sizeof *a4;
        return (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)opt.port);
        *len = sizeof *a6;
        return IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
    }
    return 0;
}

static void usage(const char *msg) {
    if (msg) fprintf(stderr, "loadgen: %s\n", msg);
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [--connections N] [--size BYTES] [--inflight K]\n"
            "               [--warmup SECONDS] [--duration SECONDS] [--cpu C] [--server-pid PID] [--label TEXT]\n"
            "               [--framing none|line|length4]\n"
            "The host must be a loopback address (127.0.0.0/8, ::1 or localhost).\n");
    exit(2);
}

static void parse(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) usage(NULL);
        if (i + 1 >= argc) usage("missing value");
        const char *v = argv[++i];
        char *end;
        if (strcmp(f, "--host") == 0) opt.host = v;
        else if (strcmp(f, "--port") == 0) opt.port = (int)strtol(v, &end, 10);
        else if (strcmp(f, "--connections") == 0) opt.connections = (int)strtol(v, &end, 10);
        else if (strcmp(f, "--size") == 0) opt.size = (size_t)strtoull(v, &end, 10);
        else if (strcmp(f, "--inflight") == 0) opt.inflight = (int)strtol(v, &end, 10);
        else if (strcmp(f, "--warmup") == 0) opt.warmup = strtod(v, &end);
        else if (strcmp(f, "--duration") == 0) opt.duration = strtod(v, &end);
        else if (strcmp(f, "--cpu") == 0) opt.cpu = (int)strtol(v, &end, 10);
        else if (strcmp(f, "--server-pid") == 0) opt.server_pid = (int)strtol(v, &end, 10);
        else if (strcmp(f, "--label") == 0) opt.label = v;
        else if (strcmp(f, "--framing") == 0) {
            if (strcmp(v, "none") == 0) opt.framing = FRAMING_NONE;
            else if (strcmp(v, "line") == 0) opt.framing = FRAMING_LINE;
            else if (strcmp(v, "length4") == 0) opt.framing = FRAMING_LENGTH4;
            else usage("--framing must be none, line or length4");
        }
        else usage("unknown option");
    }
    if (opt.port <= 0 || opt.port > 65535) usage("--port must be 1...65535");
    if (opt.connections < 1 || opt.connections > 60000) usage("--connections must be 1...60000");
    if (opt.size < 1 || opt.size > (64u << 20)) usage("--size must be 1...67108864");
    if (opt.inflight < 1 || opt.inflight > 4096) usage("--inflight must be 1...4096");
    if (opt.warmup < 0 || opt.duration <= 0) usage("--warmup must be >= 0 and --duration > 0");
    if (opt.framing == FRAMING_LINE && opt.size < 2) usage("--framing line needs --size 2 or more");
    if (opt.framing == FRAMING_LENGTH4 && opt.size < 5) usage("--framing length4 needs --size 5 or more");
    if (opt.framing == FRAMING_LENGTH4) {
        uint32_t length = (uint32_t)(opt.size - 4);
        length_header[0] = (uint8_t)(length >> 24);
        length_header[1] = (uint8_t)(length >> 16);
        length_header[2] = (uint8_t)(length >> 8);
        length_header[3] = (uint8_t)length;
    }
}

static void raise_nofile(rlim_t want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int main(int argc, char **argv) {
    parse(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct sockaddr_storage addr;
    socklen_t addrlen;
    if (!is_loopback(opt.host, &addr, &addrlen)) {
        fprintf(stderr, "loadgen: refusing %s: only loopback addresses are allowed\n", opt.host);
        return 2;
    }
    if (opt.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt.cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) {
            perror("loadgen: sched_setaffinity");
            return 2;
        }
    }
    raise_nofile((rlim_t)opt.connections + 64);

    scratch_size = 256 * 1024;
    scratch = malloc(scratch_size);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    connection *conns = calloc((size_t)opt.connections, sizeof *conns);
    if (!scratch || !conns || epfd < 0) {
        perror("loadgen: setup");
        return 1;
    }
    for (int i = 0; i < opt.connections; i++) {
        connection *c = &conns[i];
        c->index = i;
        c->pattern = malloc(opt.size + PATTERN_SLACK);
        c->send_time = calloc((size_t)opt.inflight, sizeof(uint64_t));
        if (!c->pattern || !c->send_time) {
            perror("loadgen: malloc");
            return 1;
        }
        fill_pattern(c->pattern, opt.size + PATTERN_SLACK, (uint64_t)i + 1, opt.framing == FRAMING_LINE);
        c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            perror("loadgen: socket");
            return 1;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int tries = 0;
        while (connect(c->fd, (struct sockaddr *)&addr, addrlen) != 0) {
            if ((errno == EAGAIN || errno == ECONNREFUSED || errno == EINTR) && ++tries < 50) {
                usleep(20000);
                close(c->fd);
                c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                continue;
            }
            fprintf(stderr, "loadgen: connect %s:%d (connection %d): %s\n", opt.host, opt.port, i, strerror(errno));
            return 1;
        }
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            perror("loadgen: epoll_ctl");
            return 1;
        }
    }

    uint64_t start = now_ns();
    uint64_t window_start = start + (uint64_t)(opt.warmup * 1e9);
    uint64_t window_end = window_start + (uint64_t)(opt.duration * 1e9);
    double client_cpu0 = 0, server_cpu0 = 0, busy0 = 0, softirq0 = 0;
    if (opt.warmup == 0) {
        measuring = 1;
        client_cpu0 = cpu_seconds_self();
        server_cpu0 = opt.server_pid ? cpu_seconds_of(opt.server_pid) : 0;
        machine_cpu(&busy0, &softirq0);
    }
    for (int i = 0; i < opt.connections; i++) pump_send(&conns[i]);

    struct epoll_event events[512];
    uint64_t t = start;
    while (t < window_end) {
        uint64_t next = measuring ? window_end : window_start;
        int timeout_ms = next > t ? (int)((next - t + 999999) / 1000000) : 0;
        int n = epoll_wait(epfd, events, 512, timeout_ms);
        if (n < 0 && errno != EINTR) {
            perror("loadgen: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            connection *c = events[i].data.ptr;
            if (c->dead) continue;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) handle_readable(c);
            if (!c->dead && (events[i].events & EPOLLOUT)) pump_send(c);
        }
        t = now_ns();
        if (!measuring && t >= window_start) {
            measuring = 1;
            window_start = t;
            window_end = t + (uint64_t)(opt.duration * 1e9);
            client_cpu0 = cpu_seconds_self();
            server_cpu0 = opt.server_pid ? cpu_seconds_of(opt.server_pid) : 0;
            machine_cpu(&busy0, &softirq0);
        }
        if (closed_conns == (uint64_t)opt.connections) break;
    }
    uint64_t end = now_ns();
    double client_cpu = cpu_seconds_self() - client_cpu0;
    double server_cpu = opt.server_pid ? cpu_seconds_of(opt.server_pid) - server_cpu0 : -1;
    double busy1, softirq1;
    machine_cpu(&busy1, &softirq1);
    double busy = busy1 - busy0, softirq = softirq1 - softirq0;
    // CPU time of everything else: other processes, and interrupt time not charged to a task.
    double other = busy - client_cpu - (server_cpu > 0 ? server_cpu : 0);
    if (other < 0) other = 0;
    double elapsed = (double)(end - window_start) / 1e9;

    uint64_t conn_min = UINT64_MAX, conn_max = 0;
    for (int i = 0; i < opt.connections; i++) {
        if (conns[i].window_msgs < conn_min) conn_min = conns[i].window_msgs;
        if (conns[i].window_msgs > conn_max) conn_max = conns[i].window_msgs;
    }
    double msgs_per_s = (double)window_msgs / elapsed;
    double mb_per_s = msgs_per_s * (double)opt.size / 1e6;
    double p50 = hist_percentile(&hist, 50) / 1e3;
    double p99 = hist_percentile(&hist, 99) / 1e3;
    double p999 = hist_percentile(&hist, 99.9) / 1e3;
    double maxl = hist.max / 1e3;
    double server_us_per_msg = (server_cpu >= 0 && window_msgs) ? server_cpu * 1e6 / (double)window_msgs : -1;

    static const char *framing_names[] = {"none", "line", "length4"};
    printf("RESULT label=%s framing=%s connections=%d size=%zu inflight=%d duration_s=%.3f msgs=%llu msgs_per_s=%.0f "
           "mb_per_s=%.2f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f verified_bytes=%llu errors=%llu "
           "closed=%llu conn_min_msgs=%llu conn_max_msgs=%llu client_cpu_s=%.3f client_cpu_pct=%.1f "
           "server_cpu_s=%.3f server_us_per_msg=%.3f server_cpu_pct=%.1f softirq_cpu_pct=%.1f other_cpu_pct=%.1f\n",
           opt.label[0] ? opt.label : "-", framing_names[opt.framing], opt.connections, opt.size, opt.inflight, elapsed,
           (unsigned long long)window_msgs, msgs_per_s, mb_per_s, p50, p99, p999, maxl,
           (unsigned long long)verified_bytes, (unsigned long long)errors, (unsigned long long)closed_conns,
           (unsigned long long)conn_min, (unsigned long long)conn_max, client_cpu, 100.0 * client_cpu / elapsed,
           server_cpu, server_us_per_msg, server_cpu >= 0 ? 100.0 * server_cpu / elapsed : -1.0, 100.0 * softirq / elapsed,
           100.0 * other / elapsed);
    printf("%s%s%d conns x %zu B x %d in flight: %.0f msgs/s, %.1f MB/s, latency p50 %.1f us p99 %.1f us "
           "p99.9 %.1f us, %llu bytes verified, %llu errors, client CPU %.0f%%",
           opt.label[0] ? opt.label : "", opt.label[0] ? ": " : "", opt.connections, opt.size, opt.inflight,
           msgs_per_s, mb_per_s, p50, p99, p999, (unsigned long long)verified_bytes, (unsigned long long)errors,
           100.0 * client_cpu / elapsed);
    if (server_cpu >= 0) printf(", server CPU %.0f%% (%.2f us/msg)", 100.0 * server_cpu / elapsed, server_us_per_msg);
    printf(", other CPU %.0f%%\n", 100.0 * other / elapsed);
    return (window_msgs > 0 && errors == 0 && closed_conns == 0) ? 0 : 1;
}
