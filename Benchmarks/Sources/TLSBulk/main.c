// tls-bulk: the bulk TLS echo client of `Benchmarks/run --https`. One TLS connection (OpenSSL,
// blocking socket, one thread pinned with --cpu), sends --chunk byte writes with --window
// chunks in flight for --warmup + --duration seconds, reads the echo back and checks every
// byte.
//
//   tls-bulk --port PORT [--host 127.0.0.1] [--warmup 1] [--duration 5] [--chunk 16384]
//            [--window 4] [--cpu N] [--server-pid PID] [--label NAME]
//
// The chunks of the first --warmup seconds are not measured; then, at the exact start and end
// of the measured --duration seconds (each counted when a chunk's echo is back), it reads its own CPU time (getrusage), the server's (utime + stime of
// all its threads, /proc/PID/stat) and the machine's busy time (/proc/stat), as loadgen
// does. Prints one line "RESULT key=value ..." (MB/s one direction, server CPU seconds and
// µs per MB, client and other CPU %, the protocol and cipher negotiated, verified bytes,
// errors) and exits 0 if every byte came back right. The window keeps at most
// window x chunk bytes (64 KiB by default) unread, less than loopback's socket buffers, so
// neither side can block the other for good. The server's certificate is not verified (it is
// a throwaway one on loopback). Refuses hosts outside 127.0.0.0/8.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static void usage(void) {
    fprintf(stderr, "usage: tls-bulk --port PORT [--host 127.0.0.1] [--warmup S] [--duration S] [--chunk BYTES]\n"
                    "                [--window CHUNKS] [--cpu N] [--server-pid PID] [--label NAME]\n");
    exit(2);
}

static void fail_ssl(const char *what) {
    fprintf(stderr, "tls-bulk: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

// This process's CPU time (user + system), in seconds.
static double own_cpu(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 + (double)usage.ru_stime.tv_sec +
           (double)usage.ru_stime.tv_usec / 1e6;
}

// CPU time of process `pid` (all its threads: utime + stime, fields 14 and 15 of
// /proc/PID/stat), in seconds; -1 if it cannot be read.
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
    // After ")": state (3), then fields 4..13, then utime (14) and stime (15).
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

// Busy time of the whole machine (all CPUs, everything but idle and iowait), in seconds.
static double machine_busy(void) {
    FILE *file = fopen("/proc/stat", "r");
    if (file == NULL) return 0;
    unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
    int n = fscanf(file, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle, &iowait, &irq,
                   &softirq, &steal);
    fclose(file);
    if (n != 8) return 0;
    return (double)(user + nice + system + irq + softirq) / (double)sysconf(_SC_CLK_TCK);
}

// The stream's bytes repeat with a prime period, so no chunk size lines up with it: a lost,
// repeated or reordered chunk does not compare equal. `pattern` holds two periods, so the
// bytes at any offset, up to one period long, are one slice of it (no per-byte work: the
// client's CPU goes to TLS, not to making and checking bytes).
#define PERIOD 65521
static unsigned char pattern[2 * PERIOD];
static const unsigned char *pattern_at(uint64_t offset) { return pattern + offset % PERIOD; }

// Writes all `size` bytes (SSL_write without partial writes returns only when all are sent).
static void write_all(SSL *ssl, const unsigned char *bytes, int size) {
    if (SSL_write(ssl, bytes, size) != size) fail_ssl("write failed");
}

// Reads exactly `size` echoed bytes and checks them against the pattern from `offset`;
// returns the number of wrong bytes.
static uint64_t read_check(SSL *ssl, unsigned char *buffer, int size, uint64_t offset) {
    uint64_t wrong = 0;
    int have = 0;
    while (have < size) {
        int n = SSL_read(ssl, buffer + have, size - have);
        if (n <= 0) fail_ssl("the server ended the stream early");
        have += n;
    }
    if (memcmp(buffer, pattern_at(offset), (size_t)size) != 0) {
        for (int i = 0; i < size; i++) wrong += buffer[i] != pattern_at(offset)[i];
    }
    return wrong;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *label = "server";
    int port = 0, chunk = 16384, window = 4, cpu = -1;
    long server_pid = 0;
    double duration = 5, warmup = 1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) usage();
        const char *flag = argv[i], *value = argv[i + 1];
        if (strcmp(flag, "--host") == 0) host = value;
        else if (strcmp(flag, "--port") == 0) port = atoi(value);
        else if (strcmp(flag, "--duration") == 0) duration = atof(value);
        else if (strcmp(flag, "--warmup") == 0) warmup = atof(value);
        else if (strcmp(flag, "--chunk") == 0) chunk = atoi(value);
        else if (strcmp(flag, "--window") == 0) window = atoi(value);
        else if (strcmp(flag, "--cpu") == 0) cpu = atoi(value);
        else if (strcmp(flag, "--server-pid") == 0) server_pid = atol(value);
        else if (strcmp(flag, "--label") == 0) label = value;
        else usage();
    }
    if (port <= 0 || chunk <= 0 || chunk > PERIOD || window <= 0 || duration <= 0 || warmup < 0) usage();
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1 || (ntohl(address.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "tls-bulk: only loopback (127.0.0.0/8) hosts\n");
        return 2;
    }
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
    }

    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) fail_ssl("cannot make a context");
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) { perror("connect"); return 1; }
    SSL *ssl = SSL_new(context);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) != 1) fail_ssl("handshake failed");

    for (int i = 0; i < 2 * PERIOD; i++) pattern[i] = (unsigned char)((i % PERIOD) * 31 + (i % PERIOD) / 256 + 1);
    unsigned char *in = malloc((size_t)chunk);
    if (in == NULL) return 1;
    uint64_t wrong = 0, verified = 0, sent = 0, received = 0;
    double start = now(), t0 = 0, t1 = 0, client0 = 0, server0 = 0, busy0 = 0, client1 = 0, server1 = 0, busy1 = 0;
    uint64_t received_at_start = 0, received_at_end = 0;
    int measuring = 0, ending = 0;
    // Sends chunk `sent` while fewer than `window` are out, else reads back the oldest; the
    // clock is read after each chunk that comes back.
    while (!ending || received < sent) {
        if (!ending && sent - received < (uint64_t)window) {
            write_all(ssl, pattern_at(sent * (uint64_t)chunk), chunk);
            sent++;
            continue;
        }
        wrong += read_check(ssl, in, chunk, received * (uint64_t)chunk);
        verified += (uint64_t)chunk;
        received++;
        if (ending) continue;  // draining the window after the measurement
        double t = now();
        if (!measuring && t - start >= warmup) {
            measuring = 1;
            t0 = t; client0 = own_cpu(); server0 = process_cpu(server_pid); busy0 = machine_busy();
            received_at_start = received;
        } else if (measuring && t - t0 >= duration) {
            t1 = t; client1 = own_cpu(); server1 = process_cpu(server_pid); busy1 = machine_busy();
            received_at_end = received;
            ending = 1;
        }
    }
    double elapsed = t1 - t0, client = client1 - client0, busy = busy1 - busy0;
    double server = (server0 >= 0 && server1 >= 0) ? server1 - server0 : -1;
    double other = busy - client - (server > 0 ? server : 0);
    if (other < 0) other = 0;
    double mb = (double)(received_at_end - received_at_start) * chunk / 1e6;
    const char *version = SSL_get_version(ssl), *cipher = SSL_get_cipher_name(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    printf("RESULT label=%s mb=%.1f seconds=%.3f mb_per_s=%.1f server_cpu_s=%.3f server_us_per_mb=%.1f "
           "client_cpu_pct=%.1f server_cpu_pct=%.1f other_cpu_pct=%.1f protocol=%s cipher=%s chunk=%d window=%d "
           "verified_bytes=%llu errors=%llu\n",
           label, mb, elapsed, mb / elapsed, server, server >= 0 ? 1e6 * server / mb : -1, 100 * client / elapsed,
           server >= 0 ? 100 * server / elapsed : -1, 100 * other / elapsed, version, cipher, chunk, window,
           (unsigned long long)verified, (unsigned long long)wrong);
    return wrong == 0 ? 0 : 1;
}
