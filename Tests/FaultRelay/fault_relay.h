// fault-relay: what options.c and relay.c share (see relay.c for what the tool does).
#ifndef FAULT_RELAY_H
#define FAULT_RELAY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Directions, as bits: up is client to upstream, down is upstream to client.
enum { dir_up = 1, dir_down = 2, dir_any = dir_up | dir_down };

enum fault_kind { fault_none, fault_delay, fault_trickle, fault_cut, fault_stall, fault_half_close };

struct options {
    struct sockaddr_in listen_address;
    struct sockaddr_in upstream;
    const char *upstream_text;
    enum fault_kind fault;
    int direction;              // the direction(s) a cut, a stall or a half-close applies to
    int delay_ms;               // --delay
    int trickle_bytes;          // --trickle BYTES:MS
    int trickle_ms;
    uint64_t cut_max;           // --cut DIR[:MAX]: each connection cuts after 1...MAX bytes
    bool cut_reset;             // --cut-reset: a reset (SO_LINGER 0) instead of a close
    int stall_seconds;          // --stall DIR[:SECONDS]; 0 stalls for ever
    uint64_t half_close_bytes;  // --half-close DIR[:BYTES]; 0: at the source's end of stream
    uint64_t seed;
    long first;                 // --first N: faults on the first N connections only; -1 all
    int max_seconds;
    size_t buffer_bytes;        // the most queued in one direction of one connection
    bool verbose;
};

// Parses the command line into `options`; returns 0, or 2 after printing the usage (also
// for --help, which returns 1 so that the caller exits 0).
int parse_options(int argc, char **argv, struct options *options);

// Writes the fault as its option reads ("cut any:65536 (reset)") into `text`.
void describe_fault(const struct options *options, char *text, size_t size);

// The next value of a SplitMix64 generator (seeded per connection, so runs replay).
uint64_t next_random(uint64_t *state);

#endif
