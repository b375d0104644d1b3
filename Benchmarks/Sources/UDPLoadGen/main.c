// udp-loadgen: drives a UDP echo server and measures datagrams per second and the server's CPU
// time per datagram.
//
//   udp-loadgen --port PORT [--host 127.0.0.1] [--sockets 16] [--size 64] [--inflight 8]
//               [--warmup 1] [--duration 3] [--cpu 1] [--server-pid PID] [--label NAME]
//
// One thread (pinned with --cpu), epoll, --sockets connected UDP sockets, each keeping
// --inflight datagrams outstanding: every echoed datagram is checked byte for byte (its header
// names the socket and sequence number, the rest is a pattern derived from both) and replaced
// by the next one. A socket that gets nothing back for 200 ms counts its outstanding datagrams
// as lost and refills its window, so a drop never stalls the run. After --warmup seconds the
// counters reset; over the next --duration seconds it counts echoed datagrams and reads its own
// CPU time and the server's (utime + stime, all threads, /proc/PID/stat) at the exact start and
// end. Prints one "RESULT key=value ..." line and a summary. Exit status 0 if the window echoed
// datagrams with no content errors.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    uint32_t index;
    uint64_t next_seq;      // next sequence number to send
    int outstanding;        // sent, not echoed yet
    uint64_t last_activity; // ns
} udp_socket;

static const char *host = "127.0.0.1", *label = "server";
static int port = 0, nsockets = 16, inflight = 8, cpu = -1, server_pid = -1;
static size_t size = 64;
static double warmup = 1, duration = 3;

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
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

// The datagram for (socket, seq): 4-byte socket index, 8-byte sequence, then a pattern.
static void fill(uint8_t *p, uint32_t index, uint64_t seq) {
    memcpy(p, &index, 4);
    memcpy(p + 4, &seq, 8);
    uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)index * 0x632BE59BD9B4E019ULL;
    for (size_t i = 12; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static void usage(const char *message) {
    fprintf(stderr, "udp-loadgen: %s\nusage: udp-loadgen --port PORT [--host 127.0.0.1] [--sockets N] [--size B] "
                    "[--inflight K] [--warmup S] [--duration S] [--cpu C] [--server-pid PID] [--label NAME]\n",
            message);
    exit(2);
}

static void parse(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (i + 1 >= argc) usage("every option needs a value");
        const char *value = argv[++i];
        if (!strcmp(flag, "--port")) port = atoi(value);
        else if (!strcmp(flag, "--host")) host = value;
        else if (!strcmp(flag, "--sockets")) nsockets = atoi(value);
        else if (!strcmp(flag, "--size")) size = (size_t)atol(value);
        else if (!strcmp(flag, "--inflight")) inflight = atoi(value);
        else if (!strcmp(flag, "--warmup")) warmup = atof(value);
        else if (!strcmp(flag, "--duration")) duration = atof(value);
        else if (!strcmp(flag, "--cpu")) cpu = atoi(value);
        else if (!strcmp(flag, "--server-pid")) server_pid = atoi(value);
        else if (!strcmp(flag, "--label")) label = value;
        else usage("unknown option");
    }
    if (port <= 0 || port > 65535) usage("--port is required");
    if (nsockets < 1 || inflight < 1 || size < 12 || size > 65507 || duration <= 0) usage("bad value");
}

int main(int argc, char **argv) {
    parse(argc, argv);
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
    }
    struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1) usage("--host must be an IPv4 literal");

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    udp_socket *sockets = calloc((size_t)nsockets, sizeof *sockets);
    uint8_t *out = malloc(size), *in = malloc(65536), *want = malloc(size);
    for (int i = 0; i < nsockets; i++) {
        udp_socket *s = &sockets[i];
        s->index = (uint32_t)i;
        s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int buffer = 1 << 20;
        setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
        if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&server, sizeof server) != 0) {
            perror("udp-loadgen: socket/connect");
            return 1;
        }
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = s};
        epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &event);
    }

    uint64_t echoed = 0, errors = 0, lost = 0, send_failures = 0;
    int measuring = 0;
    uint64_t start = now_ns(), measure_start = 0;
    uint64_t warmup_end = start + (uint64_t)(warmup * 1e9), end = warmup_end + (uint64_t)(duration * 1e9);
    double self_cpu0 = 0, server_cpu0 = 0;
    struct epoll_event events[64];

    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && now >= warmup_end) {
            measuring = 1;
            echoed = errors = lost = send_failures = 0;
            measure_start = now;
            self_cpu0 = cpu_seconds_self();
            server_cpu0 = server_pid > 0 ? cpu_seconds_of(server_pid) : -1;
        }
        if (measuring && now >= end) break;
        // Fill windows; a silent socket's outstanding datagrams are counted lost.
        for (int i = 0; i < nsockets; i++) {
            udp_socket *s = &sockets[i];
            if (s->outstanding > 0 && now - s->last_activity > 200000000ULL) {
                lost += (uint64_t)s->outstanding;
                s->outstanding = 0;
            }
            while (s->outstanding < inflight) {
                fill(out, s->index, s->next_seq);
                if (send(s->fd, out, size, 0) != (ssize_t)size) {
                    send_failures++;
                    break;
                }
                s->next_seq++;
                if (s->outstanding++ == 0) s->last_activity = now;
            }
        }
        int n = epoll_wait(epfd, events, 64, 50);
        for (int e = 0; e < n; e++) {
            udp_socket *s = events[e].data.ptr;
            for (;;) {
                ssize_t got = recv(s->fd, in, 65536, 0);
                if (got < 0) break;
                s->last_activity = now_ns();
                uint32_t index;
                uint64_t seq;
                memcpy(&index, in, 4);
                memcpy(&seq, in + 4, 8);
                if ((size_t)got != size || index != s->index || seq >= s->next_seq) {
                    errors++;
                } else {
                    fill(want, index, seq);
                    if (memcmp(in, want, size) != 0) errors++;
                }
                if (s->outstanding > 0) s->outstanding--;
                echoed++;
            }
        }
    }
    uint64_t measure_end = now_ns();
    double elapsed = (double)(measure_end - measure_start) / 1e9;
    double self_cpu = cpu_seconds_self() - self_cpu0;
    double server_cpu = server_cpu0 >= 0 ? cpu_seconds_of(server_pid) - server_cpu0 : -1;
    double rate = (double)echoed / elapsed;
    double us_per = server_cpu >= 0 && echoed ? server_cpu * 1e6 / (double)echoed : -1;
    printf("RESULT label=%s sockets=%d size=%zu inflight=%d duration_s=%.3f datagrams=%llu datagrams_per_s=%.0f "
           "server_cpu_s=%.3f server_us_per_datagram=%.2f client_cpu_pct=%.0f errors=%llu lost=%llu send_failures=%llu\n",
           label, nsockets, size, inflight, elapsed, (unsigned long long)echoed, rate, server_cpu, us_per,
           100.0 * self_cpu / elapsed, (unsigned long long)errors, (unsigned long long)lost,
           (unsigned long long)send_failures);
    printf("%s: %d sockets x %zu B x %d in flight: %.0f datagrams/s, server %.2f us/datagram, %llu lost, %llu errors\n",
           label, nsockets, size, inflight, rate, us_per, (unsigned long long)lost, (unsigned long long)errors);
    return echoed > 0 && errors == 0 ? 0 : 1;
}
