// fault-relay: a TCP relay that puts one fault between a client and a server, so that the
// example servers can be driven across a misbehaving link (scripts/check-relay.sh).
//
//   fault-relay --upstream HOST:PORT [--port 0] [--delay MS | --trickle BYTES:MS
//               | --cut up|down|any[:MAX] [--cut-reset] | --stall up|down[:SECONDS]
//               | --half-close up|down[:BYTES]] [--seed N] [--first N] [--max-seconds 300] [--verbose]
//
// It listens on 127.0.0.1 (port 0 picks a free one, printed as "fault-relay listening on
// 127.0.0.1:PORT"), connects each accepted client to the upstream and copies both directions,
// up (client to upstream) and down, with the run's one fault:
//
//   --delay MS          every chunk read is held MS ms before it is forwarded, both directions;
//   --trickle BYTES:MS  one write per MS ms of a random 1...BYTES bytes (TCP_NODELAY on both
//                       sockets, as always here, so each write is a segment of its own);
//   --cut DIR[:MAX]     after a random 1...MAX bytes forwarded in DIR (any: both counted
//                       together) both sides are closed, or reset with --cut-reset;
//   --stall DIR[:S]     DIR is neither read nor forwarded (for S seconds, or for ever) while
//                       the other direction flows;
//   --half-close DIR[:BYTES]  after BYTES forwarded in DIR the relay shuts down its write side
//                       toward DIR's receiver and drops whatever else the sender sends.
//
// An end of stream is always passed on as a half-close (shutdown SHUT_WR), never as a close,
// and a connection ends once both directions have ended; a reset or an error on one side is
// passed on as a reset (SO_LINGER 0) to the other. The random choices come from --seed (printed;
// each connection draws from the seed and its number, so a run replays). --first N limits the
// fault to the first N connections (later ones are relayed as they are: "does the server still
// serve?"). Queues are bounded (--buffer, 256 KiB per direction): a side whose peer's queue is
// full is not read, so back-pressure reaches the sender as it would across a real link.
//
// Why its own tool, in C over POSIX sockets and not Torus: it checks Torus, so it must not share
// Torus's code, and a fault must be exact (a cut at a given byte, a reset, a half-close at a
// given byte), which no off-the-shelf proxy does. One thread, poll() over non-blocking sockets,
// level-triggered: the interest set is rebuilt each turn from the connections' state, which
// keeps every decision in one place. It ends by itself after --max-seconds so that it cannot
// outlive a test, and on SIGTERM or SIGINT; either way it prints its totals and exits 0.
#define _GNU_SOURCE
#include "fault_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { read_size = 64 * 1024 };
static const int64_t ns_per_ms = 1000000;

// Bytes read from one side and not yet forwarded, with the time they may go (for --delay).
struct chunk {
    struct chunk *next;
    int64_t ready_ns;
    size_t length, offset;
    unsigned char bytes[];
};

// One direction of a connection.
struct flow {
    int direction;                // dir_up or dir_down
    struct chunk *head, *tail;
    size_t queued;
    uint64_t forwarded, writes, dropped;
    int64_t next_write_ns;        // --trickle: no write before this
    bool source_ended;            // the sender's end of stream was read
    bool sink_shut;               // the write side toward the receiver is shut down
    bool discarding;              // --half-close injected: what the sender sends is dropped
};

// One relayed connection: the accepted client and the relay's connection to the upstream.
struct link {
    long number;
    int client_fd, server_fd;
    bool connecting, faulty;
    bool client_hung_up, server_hung_up;  // poll said POLLHUP: no longer polled while idle
    struct flow up, down;
    uint64_t cut_at;              // --cut: bytes before the cut (in the cut's direction)
    uint64_t random;              // this connection's generator state
    int64_t started_ns;
    const char *end_reason;       // set once it must end; the sweep closes it
    char reason_text[96];
    bool end_with_reset;
};

static struct {
    long connections, closed_by_ends, cut, resets, upstream_failures, stalled_out, open_at_exit;
    long half_closes_passed, half_closes_injected;
    uint64_t bytes_up, bytes_down, writes, dropped;
} totals;

static struct options options;
static struct link **links;
static size_t link_count, link_capacity;
static volatile sig_atomic_t stop_signal;

static int64_t now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static void on_signal(int signal) { stop_signal = signal; }

// Small segments are part of the point (--trickle), and no fault should come from Nagle.
static void set_no_delay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int source_fd(const struct link *link, const struct flow *flow) {
    return flow->direction == dir_up ? link->client_fd : link->server_fd;
}

static int sink_fd(const struct link *link, const struct flow *flow) {
    return flow->direction == dir_up ? link->server_fd : link->client_fd;
}

static bool has_fault(const struct link *link, enum fault_kind fault) {
    return link->faulty && options.fault == fault;
}

// --- Ending ------------------------------------------------------------------------------------

// Marks the link to be closed by the sweep (the first reason wins).
static void end_link(struct link *link, bool reset, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void end_link(struct link *link, bool reset, const char *format, ...) {
    if (link->end_reason != NULL) return;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(link->reason_text, sizeof link->reason_text, format, arguments);
    va_end(arguments);
    link->end_reason = link->reason_text;
    link->end_with_reset = reset;
}

static void reset_on_close(int fd) {
    struct linger linger = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
}

static void free_queue(struct flow *flow) {
    while (flow->head != NULL) {
        struct chunk *next = flow->head->next;
        free(flow->head);
        flow->head = next;
    }
    flow->tail = NULL;
    flow->queued = 0;
}

static void close_link(struct link *link, int64_t now) {
    if (link->end_with_reset) {
        reset_on_close(link->client_fd);
        reset_on_close(link->server_fd);
    }
    close(link->client_fd);
    close(link->server_fd);
    free_queue(&link->up);
    free_queue(&link->down);
    totals.bytes_up += link->up.forwarded;
    totals.bytes_down += link->down.forwarded;
    totals.writes += link->up.writes + link->down.writes;
    totals.dropped += link->up.dropped + link->down.dropped;
    if (options.verbose) {
        printf("fault-relay: #%ld %s: up %llu B in %llu writes, down %llu B in %llu writes, %llu B dropped, %lld ms\n",
               link->number, link->end_reason, (unsigned long long)link->up.forwarded, (unsigned long long)link->up.writes,
               (unsigned long long)link->down.forwarded, (unsigned long long)link->down.writes,
               (unsigned long long)(link->up.dropped + link->down.dropped), (long long)((now - link->started_ns) / ns_per_ms));
        fflush(stdout);
    }
    free(link);
}

// Closes the links that were marked to end, keeping the others in order.
static void sweep_links(int64_t now) {
    size_t kept = 0;
    for (size_t i = 0; i < link_count; i++) {
        if (links[i]->end_reason != NULL) close_link(links[i], now);
        else links[kept++] = links[i];
    }
    link_count = kept;
}

// --- Faults -------------------------------------------------------------------------------------

static bool is_stalled(const struct link *link, const struct flow *flow, int64_t now) {
    if (!has_fault(link, fault_stall) || !(options.direction & flow->direction)) return false;
    return options.stall_seconds == 0 || now < link->started_ns + (int64_t)options.stall_seconds * 1000 * ns_per_ms;
}

// Bytes forwarded so far in the cut's direction (both together for any).
static uint64_t cut_count(const struct link *link) {
    return ((options.direction & dir_up) ? link->up.forwarded : 0) + ((options.direction & dir_down) ? link->down.forwarded : 0);
}

static bool injects_half_close(const struct link *link, const struct flow *flow) {
    return has_fault(link, fault_half_close) && options.half_close_bytes > 0 && (options.direction & flow->direction);
}

// How much of `length` the next write may carry: a trickle's random size, and never past the
// cut or the injected half-close.
static size_t write_limit(struct link *link, const struct flow *flow, size_t length) {
    if (has_fault(link, fault_trickle)) {
        size_t size = 1 + (size_t)(next_random(&link->random) % (uint64_t)options.trickle_bytes);
        if (size < length) length = size;
    }
    if (has_fault(link, fault_cut) && (options.direction & flow->direction)) {
        uint64_t left = link->cut_at - cut_count(link);
        if (left < length) length = (size_t)left;
    }
    if (injects_half_close(link, flow)) {
        uint64_t left = options.half_close_bytes - flow->forwarded;
        if (left < length) length = (size_t)left;
    }
    return length;
}

// The receiver sees the end of stream while the sender goes on; what it sends is dropped.
static void inject_half_close(struct flow *flow, int sink) {
    shutdown(sink, SHUT_WR);
    flow->sink_shut = true;
    flow->discarding = true;
    flow->dropped += flow->queued;
    free_queue(flow);
    totals.half_closes_injected++;
}

// After a write: has it reached the cut or the half-close?
static void after_forwarding(struct link *link, struct flow *flow) {
    if (has_fault(link, fault_cut) && (options.direction & flow->direction) && cut_count(link) >= link->cut_at) {
        totals.cut++;
        end_link(link, options.cut_reset, "cut after %llu bytes %s (%s)", (unsigned long long)link->cut_at,
                 options.direction == dir_any ? "in both directions" : flow->direction == dir_up ? "up" : "down",
                 options.cut_reset ? "reset" : "closed");
    } else if (injects_half_close(link, flow) && flow->forwarded >= options.half_close_bytes) {
        inject_half_close(flow, sink_fd(link, flow));
    }
}

// --- Moving bytes -------------------------------------------------------------------------------

static bool wants_read(const struct link *link, const struct flow *flow, int64_t now) {
    if (link->connecting || flow->source_ended || is_stalled(link, flow, now)) return false;
    return flow->discarding || flow->queued < options.buffer_bytes;
}

static bool can_write(const struct link *link, const struct flow *flow, int64_t now) {
    if (link->connecting || flow->sink_shut || flow->head == NULL || flow->head->ready_ns > now) return false;
    if (has_fault(link, fault_trickle) && now < flow->next_write_ns) return false;
    return !is_stalled(link, flow, now);
}

// A failed read or write: the connection is gone on that side, and the other side is reset.
static void fail_link(struct link *link, int fd, int error) {
    const char *side = fd == link->client_fd ? "client" : "upstream";
    totals.resets++;
    if (error == ECONNRESET) end_link(link, true, "reset by the %s (passed on)", side);
    else end_link(link, true, "%s failed: %s (reset passed on)", side, strerror(error));
}

static void enqueue(struct flow *flow, const unsigned char *bytes, size_t length, int64_t ready_ns) {
    struct chunk *chunk = malloc(sizeof *chunk + length);
    if (chunk == NULL) {
        perror("fault-relay: malloc");
        exit(1);
    }
    *chunk = (struct chunk){.ready_ns = ready_ns, .length = length};
    memcpy(chunk->bytes, bytes, length);
    if (flow->tail != NULL) flow->tail->next = chunk;
    else flow->head = chunk;
    flow->tail = chunk;
    flow->queued += length;
}

static void read_flow(struct link *link, struct flow *flow, int64_t now) {
    static unsigned char buffer[read_size];
    if (!wants_read(link, flow, now)) return;
    size_t room = flow->discarding ? sizeof buffer : options.buffer_bytes - flow->queued;
    if (room > sizeof buffer) room = sizeof buffer;
    int fd = source_fd(link, flow);
    ssize_t count = recv(fd, buffer, room, MSG_DONTWAIT);
    if (count > 0 && flow->discarding) {
        flow->dropped += (uint64_t)count;
    } else if (count > 0) {
        int64_t delay = has_fault(link, fault_delay) ? options.delay_ms * ns_per_ms : 0;
        enqueue(flow, buffer, (size_t)count, now + delay);
    } else if (count == 0) {
        flow->source_ended = true;
    } else if (errno != EAGAIN && errno != EINTR) {
        fail_link(link, fd, errno);
    }
}

// Removes `count` forwarded bytes from the front of the queue.
static void consume(struct flow *flow, size_t count) {
    flow->queued -= count;
    while (count > 0) {
        struct chunk *head = flow->head;
        size_t taken = head->length - head->offset < count ? head->length - head->offset : count;
        head->offset += taken;
        count -= taken;
        if (head->offset == head->length) {
            flow->head = head->next;
            if (flow->head == NULL) flow->tail = NULL;
            free(head);
        }
    }
}

// Gathers the chunks that are due (up to `limit` bytes) into `parts`; returns how many.
static int gather(const struct flow *flow, size_t limit, int64_t now, struct iovec *parts, int capacity) {
    int count = 0;
    for (struct chunk *chunk = flow->head; chunk != NULL && count < capacity && limit > 0 && chunk->ready_ns <= now; chunk = chunk->next) {
        size_t length = chunk->length - chunk->offset < limit ? chunk->length - chunk->offset : limit;
        parts[count++] = (struct iovec){.iov_base = chunk->bytes + chunk->offset, .iov_len = length};
        limit -= length;
    }
    return count;
}

// Writes what is due, across chunks (a trickle's write is its size, not a chunk's), until the
// receiver's buffer is full; a trickle writes once per tick.
static void write_flow(struct link *link, struct flow *flow, int64_t now) {
    int fd = sink_fd(link, flow);
    while (link->end_reason == NULL && can_write(link, flow, now)) {
        struct iovec parts[64];
        struct msghdr message = {.msg_iov = parts};
        message.msg_iovlen = (size_t)gather(flow, write_limit(link, flow, flow->queued), now, parts, 64);
        ssize_t count = sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (count < 0) {
            if (errno != EAGAIN && errno != EINTR) fail_link(link, fd, errno);
            return;
        }
        flow->forwarded += (uint64_t)count;
        flow->writes++;
        consume(flow, (size_t)count);
        after_forwarding(link, flow);
        if (has_fault(link, fault_trickle)) {
            flow->next_write_ns = now + options.trickle_ms * ns_per_ms;
            return;  // one write per tick
        }
    }
}

// Passes on an end of stream once everything before it went out, and ends the link when
// both directions are over (or a stall for ever can no longer change anything).
static void settle(struct link *link) {
    struct flow *flows[] = {&link->up, &link->down};
    for (int i = 0; i < 2; i++) {
        struct flow *flow = flows[i];
        if (flow->source_ended && !flow->sink_shut && flow->head == NULL) {
            shutdown(sink_fd(link, flow), SHUT_WR);
            flow->sink_shut = true;
            totals.half_closes_passed++;
        }
    }
    bool up_over = link->up.source_ended && link->up.sink_shut;
    bool down_over = link->down.source_ended && link->down.sink_shut;
    if (up_over && down_over) {
        totals.closed_by_ends++;
        end_link(link, false, "closed by both ends");
    } else if (has_fault(link, fault_stall) && options.stall_seconds == 0) {
        // A stalled sender that hung up (its end of stream arrived and the other direction was
        // shut toward it) beside a direction that is over: nothing can move any more.
        bool up_gone = (options.direction & dir_up) && link->client_hung_up && down_over;
        bool down_gone = (options.direction & dir_down) && link->server_hung_up && up_over;
        if (up_gone || down_gone) {
            totals.stalled_out++;
            end_link(link, false, "stalled for ever, both peers gone");
        }
    }
}

// --- Accepting and connecting -------------------------------------------------------------------

static void add_link(struct link *link) {
    if (link_count == link_capacity) {
        link_capacity = link_capacity ? 2 * link_capacity : 64;
        links = realloc(links, link_capacity * sizeof *links);
        if (links == NULL) {
            perror("fault-relay: realloc");
            exit(1);
        }
    }
    links[link_count++] = link;
}

static void start_link(int client_fd, int64_t now) {
    struct link *link = calloc(1, sizeof *link);
    if (link == NULL) {
        perror("fault-relay: calloc");
        exit(1);
    }
    long number = totals.connections++;
    *link = (struct link){
        .number = number, .client_fd = client_fd, .connecting = true, .started_ns = now,
        .faulty = options.first < 0 || number < options.first,
        .up = {.direction = dir_up}, .down = {.direction = dir_down},
        .random = options.seed ^ (0xD1B54A32D192ED03ULL * (uint64_t)(number + 1)),
    };
    if (has_fault(link, fault_cut)) link->cut_at = 1 + next_random(&link->random) % options.cut_max;
    set_no_delay(client_fd);
    link->server_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (link->server_fd < 0) {
        perror("fault-relay: socket");
        exit(1);
    }
    set_no_delay(link->server_fd);
    if (connect(link->server_fd, (const struct sockaddr *)&options.upstream, sizeof options.upstream) < 0 && errno != EINPROGRESS) {
        totals.upstream_failures++;
        end_link(link, false, "upstream connect failed: %s", strerror(errno));
    }
    add_link(link);
}

// The non-blocking connect finished (the upstream socket polled writable or hung up).
static void finish_connect(struct link *link) {
    int error = 0;
    socklen_t size = sizeof error;
    getsockopt(link->server_fd, SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) {
        totals.upstream_failures++;
        end_link(link, false, "upstream connect failed: %s", strerror(error));
    } else {
        link->connecting = false;
    }
}

// Accepts what is waiting; returns false when out of descriptors (try again a little later).
static bool accept_clients(int listener, int64_t now) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            start_link(fd, now);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE) {
            fprintf(stderr, "fault-relay: accept: %s; pausing accepts\n", strerror(errno));
            return false;
        }
        return true;  // EAGAIN, or a connection that went away before it was accepted
    }
}

static int listen_socket(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (const struct sockaddr *)&options.listen_address, sizeof options.listen_address) < 0 || listen(fd, 512) < 0) {
        perror("fault-relay: listen");
        exit(1);
    }
    return fd;
}

// --- The loop -----------------------------------------------------------------------------------

// The poll events a side needs: reads for the flow it sends, writes for the flow it receives.
static short side_events(const struct link *link, const struct flow *sent, const struct flow *received, bool hung_up, int64_t now) {
    short events = 0;
    if (wants_read(link, sent, now)) events |= POLLIN;
    if (can_write(link, received, now)) events |= POLLOUT;
    // Once hung up, an idle side would report POLLHUP on every turn: leave it out until it is
    // needed (an error still shows on the next read or write).
    if (events == 0 && hung_up) return -1;
    return events;
}

// The earliest time after `now` at which something changes without any socket becoming ready:
// a delayed chunk falls due, a trickle's next write, the end of a stall.
static int64_t next_deadline(const struct link *link, const struct flow *flow, int64_t now, int64_t deadline) {
    int64_t candidates[3] = {INT64_MAX, INT64_MAX, INT64_MAX};
    if (flow->head != NULL) candidates[0] = flow->head->ready_ns;
    if (flow->head != NULL && has_fault(link, fault_trickle)) candidates[1] = flow->next_write_ns;
    if (has_fault(link, fault_stall) && options.stall_seconds > 0)
        candidates[2] = link->started_ns + (int64_t)options.stall_seconds * 1000 * ns_per_ms;
    for (int i = 0; i < 3; i++) {
        if (candidates[i] > now && candidates[i] < deadline) deadline = candidates[i];
    }
    return deadline;
}

static void add_poll(struct pollfd *fds, size_t *count, int fd, short events) {
    fds[*count] = (struct pollfd){.fd = events < 0 ? -1 : fd, .events = events < 0 ? 0 : events};
    (*count)++;
}

// Handles what poll reported for one link: the connect, errors, reads, writes, then the ends.
static void service_link(struct link *link, short client_events, short server_events, int64_t now) {
    if (client_events & POLLHUP) link->client_hung_up = true;
    if (server_events & POLLHUP) link->server_hung_up = true;
    if (link->connecting) {
        if (server_events & (POLLOUT | POLLERR | POLLHUP)) finish_connect(link);
        if (link->connecting || link->end_reason != NULL) return;
    }
    if (client_events & POLLIN || client_events & POLLHUP || client_events & POLLERR) read_flow(link, &link->up, now);
    if (server_events & POLLIN || server_events & POLLHUP || server_events & POLLERR) read_flow(link, &link->down, now);
    // An error on a side that is not being read (stalled, or its queue full) ends the link too.
    struct { short events; int fd; } sides[] = {{client_events, link->client_fd}, {server_events, link->server_fd}};
    for (int i = 0; i < 2 && link->end_reason == NULL; i++) {
        if (!(sides[i].events & POLLERR)) continue;
        int error = 0;
        socklen_t size = sizeof error;
        getsockopt(sides[i].fd, SOL_SOCKET, SO_ERROR, &error, &size);
        fail_link(link, sides[i].fd, error ? error : ECONNRESET);
    }
    write_flow(link, &link->up, now);
    write_flow(link, &link->down, now);
    if (link->end_reason == NULL) settle(link);
}

static void print_totals(const char *why) {
    printf("fault-relay: exiting (%s): %ld connections: %ld closed by both ends, %ld cut, %ld resets passed on, "
           "%ld upstream connects failed, %ld stalled out, %ld open at exit; up %llu B, down %llu B, %llu writes; "
           "half-closes: %ld passed on, %ld injected; %llu B dropped\n",
           why, totals.connections, totals.closed_by_ends, totals.cut, totals.resets, totals.upstream_failures,
           totals.stalled_out, totals.open_at_exit, (unsigned long long)totals.bytes_up, (unsigned long long)totals.bytes_down,
           (unsigned long long)totals.writes, totals.half_closes_passed, totals.half_closes_injected,
           (unsigned long long)totals.dropped);
    fflush(stdout);
}

static void install_signals(void) {
    struct sigaction action = {.sa_handler = on_signal};  // no SA_RESTART: poll returns EINTR
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv) {
    int parsed = parse_options(argc, argv, &options);
    if (parsed != 0) return parsed == 1 ? 0 : 2;
    install_signals();
    int listener = listen_socket();
    struct sockaddr_in bound;
    socklen_t size = sizeof bound;
    getsockname(listener, (struct sockaddr *)&bound, &size);
    char fault[96], address[INET_ADDRSTRLEN];
    describe_fault(&options, fault, sizeof fault);
    inet_ntop(AF_INET, &bound.sin_addr, address, sizeof address);
    printf("fault-relay: fault %s, upstream %s, seed %llu (replay with --seed %llu)%s\n", fault, options.upstream_text,
           (unsigned long long)options.seed, (unsigned long long)options.seed, options.first >= 0 ? ", first connections only" : "");
    printf("fault-relay listening on %s:%u\n", address, ntohs(bound.sin_port));
    fflush(stdout);

    int64_t started = now_ns(), end = started + (int64_t)options.max_seconds * 1000 * ns_per_ms, accept_paused_until = 0;
    struct pollfd *fds = NULL;
    size_t fds_capacity = 0;
    const char *why = "max-seconds reached";
    while (!stop_signal) {
        int64_t now = now_ns();
        if (now >= end) break;
        if (fds_capacity < 2 * link_count + 1) {
            fds_capacity = 2 * link_capacity + 1;
            fds = realloc(fds, fds_capacity * sizeof *fds);
            if (fds == NULL) {
                perror("fault-relay: realloc");
                return 1;
            }
        }
        size_t count = 0;
        add_poll(fds, &count, listener, now >= accept_paused_until ? POLLIN : -1);
        int64_t deadline = end;
        if (accept_paused_until > now && accept_paused_until < deadline) deadline = accept_paused_until;
        for (size_t i = 0; i < link_count; i++) {
            struct link *link = links[i];
            add_poll(fds, &count, link->client_fd, side_events(link, &link->up, &link->down, link->client_hung_up, now));
            short server = link->connecting ? POLLOUT : side_events(link, &link->down, &link->up, link->server_hung_up, now);
            add_poll(fds, &count, link->server_fd, server);
            deadline = next_deadline(link, &link->down, now, next_deadline(link, &link->up, now, deadline));
        }
        int64_t wait = deadline > now ? deadline - now : 0;
        struct timespec timeout = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
        if (ppoll(fds, count, &timeout, NULL) < 0) {
            if (errno == EINTR) continue;
            perror("fault-relay: poll");
            return 1;
        }
        now = now_ns();
        if (fds[0].revents & POLLIN && !accept_clients(listener, now)) accept_paused_until = now + 100 * ns_per_ms;
        // Links accepted just now come after the polled ones; they are polled next turn.
        for (size_t i = 0; i < (count - 1) / 2; i++) service_link(links[i], fds[1 + 2 * i].revents, fds[2 + 2 * i].revents, now);
        sweep_links(now);
    }
    if (stop_signal) why = stop_signal == SIGTERM ? "SIGTERM" : "SIGINT";
    totals.open_at_exit = (long)link_count;
    for (size_t i = 0; i < link_count; i++) end_link(links[i], false, "open at exit");
    sweep_links(now_ns());
    print_totals(why);
    close(listener);
    free(fds);
    free(links);
    return 0;
}
