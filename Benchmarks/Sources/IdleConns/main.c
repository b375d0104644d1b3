// idle-conns: measures a server's memory per idle connection.
//
//   idle-conns --port P --server-pid PID [--host 127.0.0.1] [--count 10000] [--settle SECONDS]
//              [--label TEXT]
//
// Reads the server's VmRSS from /proc/PID/status, then opens --count TCP connections to it one
// after another. Each connection sends one byte and waits for its echo, which proves that the
// server accepted it and that its handler is waiting in a read: the state an idle connection
// of a real server is in. After --settle seconds it reads VmRSS again and reports
// (after - before) / count, then closes everything. Loopback addresses only.
//
// It also reads VmRSS once --count / 5 connections are open and reports the marginal cost
// (after - middle) / (count - count / 5): the first connections also pay for pools a server
// fills lazily and once (receive buffers touched for the first time, allocator arenas, task
// pools), the marginal figure is what each further idle connection costs.
//
// Output: one "RESULT " line (key=value) and one human line. Exit status 0 on success.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static long rss_kib(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static int count_fds(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void usage(const char *msg) {
    if (msg) fprintf(stderr, "idle-conns: %s\n", msg);
    fprintf(stderr, "usage: idle-conns --port P --server-pid PID [--host 127.0.0.1] [--count 10000] "
                    "[--settle SECONDS] [--label TEXT]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *label = "-";
    int port = 0, pid = 0, count = 10000;
    double settle = 1.0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage("missing value");
        const char *f = argv[i], *v = argv[++i];
        if (strcmp(f, "--port") == 0) port = atoi(v);
        else if (strcmp(f, "--server-pid") == 0) pid = atoi(v);
        else if (strcmp(f, "--host") == 0) host = v;
        else if (strcmp(f, "--count") == 0) count = atoi(v);
        else if (strcmp(f, "--settle") == 0) settle = atof(v);
        else if (strcmp(f, "--label") == 0) label = v;
        else usage("unknown option");
    }
    if (port <= 0 || port > 65535 || pid <= 0 || count <= 0) usage("--port, --server-pid and --count are required");
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 || (ntohl(addr.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "idle-conns: refusing %s: only 127.0.0.0/8 addresses are allowed\n", host);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < (rlim_t)count + 64) {
        fprintf(stderr, "idle-conns: RLIMIT_NOFILE hard limit %lu is below %d\n", (unsigned long)rl.rlim_max, count + 64);
        return 1;
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    long before = rss_kib(pid);
    int fds_before = count_fds(pid);
    if (before < 0) {
        fprintf(stderr, "idle-conns: cannot read /proc/%d/status\n", pid);
        return 1;
    }
    int *fds = calloc((size_t)count, sizeof *fds);
    int middle = count / 5;
    long rss_middle = before;
    int one = 1;
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fprintf(stderr, "idle-conns: socket after %d connections: %s\n", i, strerror(errno));
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
            fprintf(stderr, "idle-conns: connect after %d connections: %s\n", i, strerror(errno));
            return 1;
        }
        char b = (char)('a' + i % 26), r = 0;
        if (send(fd, &b, 1, 0) != 1) {
            fprintf(stderr, "idle-conns: send on connection %d: %s\n", i, strerror(errno));
            return 1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 10000) != 1 || recv(fd, &r, 1, 0) != 1 || r != b) {
            fprintf(stderr, "idle-conns: connection %d: no echo within 10 s\n", i);
            return 1;
        }
        fds[i] = fd;
        if (i + 1 == middle) {
            usleep((useconds_t)(settle * 1e6));
            rss_middle = rss_kib(pid);
        }
    }
    usleep((useconds_t)(settle * 1e6));
    long after = rss_kib(pid);
    int fds_after = count_fds(pid);
    double per_conn = (double)(after - before) * 1024.0 / count;
    double marginal = count > middle ? (double)(after - rss_middle) * 1024.0 / (count - middle) : per_conn;
    printf("RESULT label=%s connections=%d rss_before_kib=%ld rss_middle_kib=%ld rss_after_kib=%ld bytes_per_conn=%.0f "
           "marginal_bytes_per_conn=%.0f server_fds_before=%d server_fds_after=%d\n",
           label, count, before, rss_middle, after, per_conn, marginal, fds_before, fds_after);
    printf("%s: %d idle connections: server RSS %ld KiB -> %ld KiB, %.0f bytes (%.2f KiB) per connection, "
           "%.0f bytes per connection after the first %d\n",
           label, count, before, after, per_conn, per_conn / 1024.0, marginal, middle);
    for (int i = 0; i < count; i++) close(fds[i]);
    return 0;
}
