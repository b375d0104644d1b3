// CChaosSoakTLS: the chaos soak client's own door to OpenSSL (libssl-dev, OpenSSL 3).
//
// The soak client checks TorusTLS, so it must not share its code: this module is separate
// from CTorusTLS and the client never imports Torus or TorusTLS. Swift imports OpenSSL's
// functions and integer constants directly; what it cannot import (function-like macros) is
// wrapped here as plain functions, plus one helper that turns OpenSSL's error queue into text.
#ifndef CHAOS_SOAK_TLS_H
#define CHAOS_SOAK_TLS_H

#include <stddef.h>

#if __has_include(<openssl/ssl.h>)
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#else
#error "chaos-soak needs OpenSSL 3 headers: apt-get install -y libssl-dev (or ./scripts/bootstrap.sh)"
#endif

/// SSL_CTX_set_min_proto_version and SSL_CTX_set_max_proto_version (macros): versions as
/// TLS1_2_VERSION, TLS1_3_VERSION. Returns 1 when both were accepted.
int chaos_tls_set_version_range(SSL_CTX *context, int minimum, int maximum);

/// SSL_set_tlsext_host_name (a macro): the SNI name the client sends. Returns 1 on success.
int chaos_tls_set_server_name(SSL *ssl, const char *name);

/// BIO_set_mem_eof_return(bio, -1) (a macro): an empty memory BIO reads as "retry later"
/// (so SSL_read reports SSL_ERROR_WANT_READ) instead of end of file.
void chaos_tls_memory_bio_retries_when_empty(BIO *bio);

/// Empties OpenSSL's error queue of this thread into `buffer` (NUL-terminated, "; " between
/// entries, cut to `capacity`). Returns how many entries there were.
int chaos_tls_take_errors(char *buffer, size_t capacity);

#endif
