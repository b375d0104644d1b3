// CFuzzTLS: what the TLS fuzz target needs from OpenSSL and libFuzzer that TorusTLS does not
// offer: a throwaway certificate made at start-up (no key is committed), and counters that
// report to libFuzzer what happened inside OpenSSL, which is not instrumented.
#ifndef TORUS_CFUZZTLS_H
#define TORUS_CFUZZTLS_H

#include <stddef.h>
#include <stdint.h>

/// Makes a new ECDSA P-256 key and a self-signed certificate for the DNS names in `names`
/// (comma-separated; the first is also the common name), valid from a day ago for ten years.
/// Both are written as PEM into `*certificate_pem` and `*key_pem` (NUL-terminated, for `free`).
/// Returns 1, or 0 when OpenSSL fails.
int fuzz_tls_make_identity(const char *names, char **certificate_pem, char **key_pem);

/// Counts `feature` (any number; it is hashed into the counters) in the current run: libFuzzer
/// treats a counter it has not seen set before as new coverage.
void fuzz_tls_note(uint64_t feature);

#endif
