// tls-conns: the new-connections load generator of `Benchmarks/run --https`. Keeps
// --connections TLS connections going at once, each doing one full handshake and one HTTP/1.1
// request (`GET / HTTP/1.1`, `Connection: close`), reading the answer to the end of the stream,
// then a new connection: one handshake per request.
//
//   tls-conns --port PORT [--host 127.0.0.1] [--connections 64] [--warmup 1] [--duration 5]
//             [--cpu N] [--server-pid PID] [--label NAME]
//
// Why not wrk or h2load with `Connection: close`: both resume the previous connection's session
// on the next one (counted with `openssl s_server -www` and Python's `session_reused`: 1516 of
// 1518 wrk handshakes, 98 of 100 h2load ones were resumptions), so they measure resumption, not
// the full handshake. Here the client context keeps no sessions and never offers one
// (SSL_SESS_CACHE_OFF, no SSL_set_session), so every handshake is full (ECDHE key exchange and
// the server's signature); the RESULT line counts resumed handshakes as a check (always 0).
// `openssl s_time -new` does full handshakes too, but one at a time, so it measures the
// round trips, not the server.
//
// One thread (pinned with --cpu), non-blocking sockets, epoll, OpenSSL over the descriptors.
// After --warmup seconds it resets its counters and measures --duration seconds; at the start
// and end of that window it reads its own CPU time, the server's (utime + stime of all its
// threads, /proc/PID/stat) and the machine's busy time (/proc/stat), as loadgen does. Prints
// one line "RESULT key=value ..." (handshakes/s, server CPU µs per handshake, client and other
// CPU %, protocol and cipher, errors, resumed) and exits 0 if no request failed. A request
// counts as done when the answer has a `200` status line and `Hello, World!`. Refuses hosts
// outside 127.0.0.0/8. The server's certificate is not verified (throwaway, loopback).
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
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static void usage(void) {
    fprintf(stderr, "usage: tls-conns --port PORT [--host 127.0.0.1] [--connections N] [--warmup S] [--duration S]\n"
                    "                 [--cpu N] [--server-pid PID] [--label NAME]\n");
    exit(2);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double own_cpu(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 + (double)usage.ru_stime.tv_sec +
           (double)usage.ru_stime.tv_usec / 1e6;
}

// CPU time of process `pid`, all threads (utime + stime, /proc/PID/stat), in seconds; -1 if
// it cannot be read.
static double process_cpu(long pid) {
    if (pid <= 0) return -1;
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *file = fopen(path, "r");
    if (file == NULL) return -1;
    size_t n = fread(line, 1, sizeof line - 1, file);
    fclose(file);
    line[n] = 0;
    char *p = strrchr(line, ')');  // the command name may hold spaces; fields follow its ')'
    if (p == NULL) return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

// Busy time of the whole machine (all CPUs, everything but idle and iowait), in seconds.
static double machine_busy(void) {
    FILE *file = fopen("/proc/stat", "r");
    if (file == NULL) return 0;
    unsigned long long user, nice, system, idle, iowait, irq, softirq;
    int n = fscanf(file, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle, &iowait, &irq, &softirq);
    fclose(file);
    if (n != 7) return 0;
    return (double)(user + nice + system + irq + softirq) / (double)sysconf(_SC_CLK_TCK);
}

// One connection slot: a socket and its TLS object, where it is in its one request, and what
// of the answer has arrived.
enum step { CONNECTING, HANDSHAKE, WRITING, READING };
struct slot {
    int fd;
    SSL *ssl;
    enum step step;
    char answer[512];  // the first bytes of the answer: the status line and headers, the body
    size_t have;
};

static const char request[] = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
static SSL_CTX *context;
static struct sockaddr_in address;
static int poller;
static uint64_t done, errors, resumed;
static char protocol[32] = "-", cipher[64] = "-";

// Waits on `fd` for `events` (EPOLLIN or EPOLLOUT), one-shot.
static void wait_for(struct slot *s, uint32_t events, int add) {
    struct epoll_event event = {.events = events | EPOLLONESHOT, .data.ptr = s};
    if (epoll_ctl(poller, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s->fd, &event) != 0) {
        perror("epoll_ctl");
        exit(1);
    }
}

// Starts a new connection in slot `s`: a non-blocking connect, answered by EPOLLOUT.
static void start(struct slot *s) {
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0) { perror("socket"); exit(1); }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->ssl = NULL;
    s->have = 0;
    s->step = CONNECTING;
    if (connect(s->fd, (struct sockaddr *)&address, sizeof address) != 0 && errno != EINPROGRESS) {
        perror("connect");
        exit(1);
    }
    wait_for(s, EPOLLOUT, 1);
}

// Ends the connection in slot `s` (counted as done or as an error) and starts the next.
static void finish(struct slot *s, int ok) {
    if (ok) done++; else errors++;
    if (s->ssl) SSL_free(s->ssl);
    close(s->fd);  // also takes it out of the epoll set
    ERR_clear_error();
    start(s);
}

// Whether the answer so far is a whole `200` answer with the hello body.
static int answer_ok(const struct slot *s) {
    return s->have >= 12 && memcmp(s->answer, "HTTP/1.1 200", 12) == 0 && memmem(s->answer, s->have, "Hello, World!", 13) != NULL;
}

// Moves slot `s` on as far as it can go without blocking, then waits for what it needs.
static void advance(struct slot *s) {
    for (;;) {
        int result = 0, error = 0;
        switch (s->step) {
        case CONNECTING: {
            socklen_t length = sizeof error;
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &error, &length);
            if (error != 0) { finish(s, 0); return; }
            s->ssl = SSL_new(context);
            SSL_set_fd(s->ssl, s->fd);
            SSL_set_tlsext_host_name(s->ssl, "localhost");
            SSL_set_connect_state(s->ssl);
            s->step = HANDSHAKE;
            continue;
        }
        case HANDSHAKE:
            result = SSL_do_handshake(s->ssl);
            if (result == 1) {
                if (SSL_session_reused(s->ssl)) resumed++;
                if (protocol[0] == '-') {
                    snprintf(protocol, sizeof protocol, "%s", SSL_get_version(s->ssl));
                    snprintf(cipher, sizeof cipher, "%s", SSL_get_cipher_name(s->ssl));
                }
                s->step = WRITING;
                continue;
            }
            break;
        case WRITING:
            // The request fits in one record; without partial writes SSL_write sends it whole.
            result = SSL_write(s->ssl, request, (int)sizeof request - 1);
            if (result > 0) { s->step = READING; continue; }
            break;
        case READING: {
            char buffer[4096];
            result = SSL_read(s->ssl, buffer, sizeof buffer);
            if (result > 0) {
                size_t keep = sizeof s->answer - s->have;
                if ((size_t)result < keep) keep = (size_t)result;
                memcpy(s->answer + s->have, buffer, keep);
                s->have += keep;
                continue;
            }
            error = SSL_get_error(s->ssl, result);
            // The end of the stream, with or without close_notify, ends a complete answer.
            if (error == SSL_ERROR_ZERO_RETURN || error == SSL_ERROR_SYSCALL || error == SSL_ERROR_SSL) {
                finish(s, answer_ok(s));
                return;
            }
            break;
        }
        }
        error = SSL_get_error(s->ssl, result);
        if (error == SSL_ERROR_WANT_READ) { wait_for(s, EPOLLIN, 0); return; }
        if (error == SSL_ERROR_WANT_WRITE) { wait_for(s, EPOLLOUT, 0); return; }
        finish(s, 0);
        return;
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *label = "server";
    int port = 0, connections = 64, cpu = -1;
    double warmup = 1, duration = 5;
    long server_pid = 0;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) usage();
        const char *flag = argv[i], *value = argv[i + 1];
        if (strcmp(flag, "--host") == 0) host = value;
        else if (strcmp(flag, "--port") == 0) port = atoi(value);
        else if (strcmp(flag, "--connections") == 0) connections = atoi(value);
        else if (strcmp(flag, "--warmup") == 0) warmup = atof(value);
        else if (strcmp(flag, "--duration") == 0) duration = atof(value);
        else if (strcmp(flag, "--cpu") == 0) cpu = atoi(value);
        else if (strcmp(flag, "--server-pid") == 0) server_pid = atol(value);
        else if (strcmp(flag, "--label") == 0) label = value;
        else usage();
    }
    if (port <= 0 || connections <= 0 || duration <= 0 || warmup < 0) usage();
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1 || (ntohl(address.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "tls-conns: only loopback (127.0.0.0/8) hosts\n");
        return 2;
    }
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
    }
    signal(SIGPIPE, SIG_IGN);

    context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) { ERR_print_errors_fp(stderr); return 1; }
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    // No session is ever kept or offered: every handshake is a full one.
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
    poller = epoll_create1(0);
    struct slot *slots = calloc((size_t)connections, sizeof *slots);
    if (slots == NULL) return 1;
    for (int i = 0; i < connections; i++) start(&slots[i]);

    double start_time = now(), t0 = 0, client0 = 0, server0 = 0, busy0 = 0;
    int measuring = 0;
    struct epoll_event events[256];
    for (;;) {
        double t = now();
        if (!measuring && t - start_time >= warmup) {
            measuring = 1;
            done = errors = resumed = 0;
            t0 = t; client0 = own_cpu(); server0 = process_cpu(server_pid); busy0 = machine_busy();
        }
        if (measuring && t - t0 >= duration) break;
        int n = epoll_wait(poller, events, 256, 10);
        for (int i = 0; i < n; i++) advance(events[i].data.ptr);
    }
    double elapsed = now() - t0, client = own_cpu() - client0, server1 = process_cpu(server_pid);
    double busy = machine_busy() - busy0;
    double server = (server0 >= 0 && server1 >= 0) ? server1 - server0 : -1;
    double other = busy - client - (server > 0 ? server : 0);
    if (other < 0) other = 0;
    printf("RESULT label=%s handshakes=%llu seconds=%.3f handshakes_per_s=%.1f server_cpu_s=%.3f "
           "server_us_per_handshake=%.1f client_cpu_pct=%.1f server_cpu_pct=%.1f other_cpu_pct=%.1f protocol=%s "
           "cipher=%s resumed=%llu errors=%llu\n",
           label, (unsigned long long)done, elapsed, (double)done / elapsed, server,
           server >= 0 && done > 0 ? 1e6 * server / (double)done : -1, 100 * client / elapsed,
           server >= 0 ? 100 * server / elapsed : -1, 100 * other / elapsed, protocol, cipher,
           (unsigned long long)resumed, (unsigned long long)errors);
    return errors == 0 && done > 0 ? 0 : 1;
}
