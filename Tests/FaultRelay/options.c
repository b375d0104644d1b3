// fault-relay's command line: one fault per run, its parameters, and the seed.
#define _GNU_SOURCE
#include "fault_relay.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: fault-relay --upstream HOST:PORT [--host 127.0.0.1] [--port 0]\n"
    "                   [--delay MS | --trickle BYTES:MS | --cut up|down|any[:MAX] [--cut-reset]\n"
    "                    | --stall up|down[:SECONDS] | --half-close up|down[:BYTES]]\n"
    "                   [--seed N] [--first N] [--buffer BYTES] [--max-seconds 300] [--verbose]\n"
    "  --delay MS          hold every chunk MS ms before forwarding it (both directions)\n"
    "  --trickle BYTES:MS  forward at most BYTES bytes (a random 1...BYTES) per write, one write per MS ms\n"
    "  --cut DIR[:MAX]     after a random 1...MAX bytes (65536) in DIR (any: both counted), close both sides\n"
    "  --cut-reset         cut with a reset (SO_LINGER 0) instead of a close\n"
    "  --stall DIR[:S]     stop reading and forwarding DIR for S seconds (for ever without S)\n"
    "  --half-close DIR[:BYTES]  after BYTES in DIR, shut down the write side toward DIR's receiver\n"
    "                      and drop the rest of DIR (without BYTES: at the sender's end of stream)\n"
    "  --first N           faults on the first N connections only; the others are relayed as they are\n"
    "  --seed N            seeds the random choices (printed; random by default)\n"
    "  --buffer BYTES      the most queued per direction (262144); a side whose queue is full is not read\n"
    "  --max-seconds S     exit after S seconds whatever happens (300)\n"
    "  --verbose           a line per connection when it ends: how, and what it carried\n"
    "  up is client to upstream, down upstream to client. An end of stream is always passed on\n"
    "  as a half-close; a reset as a reset.\n";

static int usage_error(const char *format, const char *value) {
    fprintf(stderr, "fault-relay: ");
    fprintf(stderr, format, value);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

// Parses a whole decimal number in [minimum, maximum].
static bool parse_number(const char *text, uint64_t minimum, uint64_t maximum, uint64_t *value) {
    if (text == NULL || *text < '0' || *text > '9') return false;
    char *end = NULL;
    unsigned long long parsed = strtoull(text, &end, 10);
    if (*end != '\0' || parsed < minimum || parsed > maximum) return false;
    *value = parsed;
    return true;
}

// Parses "HOST:PORT" (HOST an IPv4 address or a name that resolves to one).
static bool parse_address(const char *text, struct sockaddr_in *address) {
    const char *colon = strrchr(text, ':');
    uint64_t port;
    if (colon == NULL || colon == text || !parse_number(colon + 1, 0, 65535, &port)) return false;
    char host[256];
    size_t length = (size_t)(colon - text);
    if (length >= sizeof host) return false;
    memcpy(host, text, length);
    host[length] = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *found = NULL;
    if (getaddrinfo(host, NULL, &hints, &found) != 0 || found == NULL) return false;
    *address = *(struct sockaddr_in *)found->ai_addr;
    address->sin_port = htons((uint16_t)port);
    freeaddrinfo(found);
    return true;
}

// Parses "DIR" or "DIR:NUMBER" (DIR up, down, or any where `any_allowed`); a missing number
// leaves `number` as it is.
static bool parse_direction(const char *text, bool any_allowed, int *direction, uint64_t minimum, uint64_t *number) {
    const char *colon = strchr(text, ':');
    size_t length = colon ? (size_t)(colon - text) : strlen(text);
    if (length == 2 && strncmp(text, "up", 2) == 0) *direction = dir_up;
    else if (length == 4 && strncmp(text, "down", 4) == 0) *direction = dir_down;
    else if (any_allowed && length == 3 && strncmp(text, "any", 3) == 0) *direction = dir_any;
    else return false;
    return colon == NULL || parse_number(colon + 1, minimum, UINT64_MAX / 2, number);
}

static uint64_t random_seed(void) {
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
    return seed % 1000000000000ULL;  // short enough to copy from a log
}

// Sets the one fault of the run; a second fault option is a usage error.
static bool set_fault(struct options *options, enum fault_kind fault) {
    if (options->fault != fault_none) return false;
    options->fault = fault;
    return true;
}

int parse_options(int argc, char **argv, struct options *options) {
    const char *host = "127.0.0.1";
    uint64_t port = 0, number = 0;
    bool seeded = false;
    *options = (struct options){.cut_max = 65536, .first = -1, .max_seconds = 300, .buffer_bytes = 256 * 1024};
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            printf("%s", usage_text);
            return 1;
        }
        if (strcmp(flag, "--verbose") == 0) { options->verbose = true; continue; }
        if (strcmp(flag, "--cut-reset") == 0) { options->cut_reset = true; continue; }
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        if (value == NULL) return usage_error("%s needs a value", flag);
        if (strcmp(flag, "--upstream") == 0) {
            if (!parse_address(value, &options->upstream)) return usage_error("--upstream needs HOST:PORT, not %s", value);
            options->upstream_text = value;
        } else if (strcmp(flag, "--host") == 0) {
            host = value;
        } else if (strcmp(flag, "--port") == 0) {
            if (!parse_number(value, 0, 65535, &port)) return usage_error("--port needs a port number, not %s", value);
        } else if (strcmp(flag, "--delay") == 0) {
            if (!set_fault(options, fault_delay)) return usage_error("one fault per run (%s)", flag);
            if (!parse_number(value, 1, 600000, &number)) return usage_error("--delay needs milliseconds, not %s", value);
            options->delay_ms = (int)number;
        } else if (strcmp(flag, "--trickle") == 0) {
            if (!set_fault(options, fault_trickle)) return usage_error("one fault per run (%s)", flag);
            uint64_t bytes, ms;
            char bytes_text[32];
            const char *colon = strchr(value, ':');
            if (colon == NULL || (size_t)(colon - value) >= sizeof bytes_text) return usage_error("--trickle needs BYTES:MS, not %s", value);
            memcpy(bytes_text, value, (size_t)(colon - value));
            bytes_text[colon - value] = '\0';
            if (!parse_number(bytes_text, 1, 1 << 20, &bytes) || !parse_number(colon + 1, 1, 60000, &ms))
                return usage_error("--trickle needs BYTES:MS, not %s", value);
            options->trickle_bytes = (int)bytes;
            options->trickle_ms = (int)ms;
        } else if (strcmp(flag, "--cut") == 0) {
            if (!set_fault(options, fault_cut)) return usage_error("one fault per run (%s)", flag);
            if (!parse_direction(value, true, &options->direction, 1, &options->cut_max))
                return usage_error("--cut needs up, down or any, and optionally :MAX, not %s", value);
        } else if (strcmp(flag, "--stall") == 0) {
            if (!set_fault(options, fault_stall)) return usage_error("one fault per run (%s)", flag);
            if (!parse_direction(value, false, &options->direction, 1, &number) || number > 86400)
                return usage_error("--stall needs up or down, and optionally :SECONDS, not %s", value);
            options->stall_seconds = (int)number;
        } else if (strcmp(flag, "--half-close") == 0) {
            if (!set_fault(options, fault_half_close)) return usage_error("one fault per run (%s)", flag);
            if (!parse_direction(value, false, &options->direction, 1, &options->half_close_bytes))
                return usage_error("--half-close needs up or down, and optionally :BYTES, not %s", value);
        } else if (strcmp(flag, "--seed") == 0) {
            if (!parse_number(value, 0, UINT64_MAX, &options->seed)) return usage_error("--seed needs a number, not %s", value);
            seeded = true;
        } else if (strcmp(flag, "--first") == 0) {
            if (!parse_number(value, 0, 1000000000, &number)) return usage_error("--first needs a count, not %s", value);
            options->first = (long)number;
        } else if (strcmp(flag, "--buffer") == 0) {
            if (!parse_number(value, 1024, 64 << 20, &number)) return usage_error("--buffer needs 1024 bytes or more, not %s", value);
            options->buffer_bytes = (size_t)number;
        } else if (strcmp(flag, "--max-seconds") == 0) {
            if (!parse_number(value, 1, 86400, &number)) return usage_error("--max-seconds needs seconds, not %s", value);
            options->max_seconds = (int)number;
        } else {
            return usage_error("unknown option %s", flag);
        }
    }
    if (options->upstream_text == NULL) return usage_error("%s", "--upstream HOST:PORT is required");
    options->listen_address = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &options->listen_address.sin_addr) != 1) return usage_error("--host needs an IPv4 address, not %s", host);
    if (options->cut_reset && options->fault != fault_cut) return usage_error("%s goes with --cut", "--cut-reset");
    if (!seeded) options->seed = random_seed();
    return 0;
}

static const char *direction_name(int direction) {
    return direction == dir_up ? "up" : direction == dir_down ? "down" : "any";
}

void describe_fault(const struct options *options, char *text, size_t size) {
    switch (options->fault) {
    case fault_none: snprintf(text, size, "none"); break;
    case fault_delay: snprintf(text, size, "delay %d ms", options->delay_ms); break;
    case fault_trickle: snprintf(text, size, "trickle %d:%d", options->trickle_bytes, options->trickle_ms); break;
    case fault_cut:
        snprintf(text, size, "cut %s:%llu (%s)", direction_name(options->direction),
                 (unsigned long long)options->cut_max, options->cut_reset ? "reset" : "close");
        break;
    case fault_stall:
        if (options->stall_seconds > 0) snprintf(text, size, "stall %s:%d", direction_name(options->direction), options->stall_seconds);
        else snprintf(text, size, "stall %s (for ever)", direction_name(options->direction));
        break;
    case fault_half_close:
        if (options->half_close_bytes > 0)
            snprintf(text, size, "half-close %s:%llu", direction_name(options->direction), (unsigned long long)options->half_close_bytes);
        else snprintf(text, size, "half-close %s (at end of stream)", direction_name(options->direction));
        break;
    }
}

uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
