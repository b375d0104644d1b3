// CTorusTLS: the only place Torus names OpenSSL.
//
// What Swift cannot import from OpenSSL (function-like macros) is wrapped here as functions,
// and so is the one piece of OpenSSL glue that is easier in C: the transport BIO, through
// which every encrypted byte passes between OpenSSL and Torus's engine (OpenSSL never
// touches a socket).
#ifndef TORUS_CTORUSTLS_H
#define TORUS_CTORUSTLS_H

#include <stddef.h>
#include <stdint.h>

#if __has_include(<openssl/ssl.h>)
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#else
#error "TorusTLS needs OpenSSL 3: run `sudo apt-get install -y libssl-dev` (Debian/Ubuntu), or ./scripts/bootstrap.sh"
#endif

/// The two directions of encrypted bytes between OpenSSL and a TLS stream.
///
/// Incoming: before an OpenSSL call the stream points `input` at received bytes; OpenSSL reads
/// what it needs and `input`/`input_length` advance past it. Outgoing: what OpenSSL writes is
/// appended to `output`, which the stream takes (`torus_tls_take_output`) and sends.
typedef struct torus_tls_transport {
    const uint8_t *input;
    size_t input_length;
    /// The connection has reached end of stream: a read with no input left is end of file.
    int input_ended;
    uint8_t *output;
    size_t output_length;
    size_t output_capacity;
} torus_tls_transport;

/// A new SSL object for `context`, reading and writing through `transport` (which must
/// outlive it). NULL when OpenSSL cannot allocate.
SSL *torus_tls_new_ssl(SSL_CTX *context, torus_tls_transport *transport);

/// Hands the bytes OpenSSL wrote so far, and the buffer's size, to the caller, who frees it
/// with `free` or gives it back with `torus_tls_return_output`; the transport starts a new
/// output buffer. NULL (and 0, 0) when there are none.
uint8_t *torus_tls_take_output(torus_tls_transport *transport, size_t *length, size_t *capacity);
/// Gives back a buffer `torus_tls_take_output` handed over, once sent: the
/// transport writes its next records into it if it has started no buffer since and
/// `capacity` is at most `keep_capacity`; else it is freed.
void torus_tls_return_output(torus_tls_transport *transport, uint8_t *output, size_t capacity, size_t keep_capacity);

/// Forgets the bytes OpenSSL wrote so far (the caller copied them), keeping the buffer for
/// the next records unless it grew past `keep_capacity` bytes.
void torus_tls_reset_output(torus_tls_transport *transport, size_t keep_capacity);

// MARK: Macros of OpenSSL, as functions

int torus_tls_set_min_version(SSL_CTX *context, int version);
int torus_tls_set_max_version(SSL_CTX *context, int version);
int torus_tls_set_host_name(SSL *ssl, const char *name);
void torus_tls_set_modes(SSL_CTX *context);
void torus_tls_set_client_session_cache(SSL_CTX *context);
/// The options every Torus context has: no renegotiation (refused with an alert), no
/// compression, the server's cipher preference, no TLS below 1.2.
void torus_tls_set_safe_options(SSL_CTX *context);

/// Bounds a server's session cache (for TLS 1.2 clients that resume by session ID rather
/// than by ticket) to `size` sessions.
void torus_tls_set_server_session_cache_size(SSL_CTX *context, long size);

/// Turns session resumption off: no tickets, no session cache.
void torus_tls_disable_resumption(SSL_CTX *context);

// MARK: Keys and certificates from PEM in memory

/// Uses the PEM certificates in `pem` as `context`'s chain: the first is the leaf, the rest
/// its intermediates. Returns how many were read, or -1 (OpenSSL's error queue says why).
int torus_tls_use_certificate_chain(SSL_CTX *context, const void *pem, size_t length);

/// Uses the PEM private key in `pem` for `context`. Returns 1, or 0 (see the error queue).
int torus_tls_use_private_key(SSL_CTX *context, const void *pem, size_t length);

/// Adds the PEM certificates in `pem` to the certificates `context` trusts, and (for a server
/// asking for client certificates) to the CA names it sends. Returns how many, or -1.
int torus_tls_add_trusted_certificates(SSL_CTX *context, const void *pem, size_t length, int as_client_ca);

// MARK: Callbacks

/// Protocol names for ALPN in wire format: each name preceded by its length, the server's
/// preference first.
typedef struct torus_tls_alpn {
    const uint8_t *protocols;
    unsigned int length;
} torus_tls_alpn;

/// Serves ALPN from `alpn` (which must outlive `context`): the first of the server's protocols
/// that the client offers. A client offering none of them gets a no_application_protocol
/// alert (RFC 7301); a client offering no ALPN at all is served without.
void torus_tls_set_alpn_server(SSL_CTX *context, const torus_tls_alpn *alpn);

/// One name a server answers for (an exact host name, or `*.` and a suffix for one label),
/// and the context with its certificate.
typedef struct torus_tls_server_name {
    const char *name;
    SSL_CTX *context;
} torus_tls_server_name;

typedef struct torus_tls_server_names {
    const torus_tls_server_name *names;
    size_t count;
} torus_tls_server_names;

/// Picks the certificate by the name a client sends (SNI) from `table` (which must outlive
/// `context`); a name that matches none, or no name, keeps `context`'s own.
void torus_tls_set_server_names(SSL_CTX *context, const torus_tls_server_names *table);

/// The signature of the callback that receives each new client session (a TLS 1.3 ticket or a
/// TLS 1.2 session); it returns 1 when it keeps the reference, 0 when OpenSSL should free it.
typedef int (*torus_tls_new_session_callback)(SSL *ssl, SSL_SESSION *session);
void torus_tls_set_new_session_callback(SSL_CTX *context, torus_tls_new_session_callback callback);

// MARK: Certificates and errors

/// The peer's certificate's subject and issuer as one-line text into the buffers (empty when
/// there is no certificate).
void torus_tls_peer_names(SSL *ssl, char *subject, size_t subject_size, char *issuer, size_t issuer_size);

/// The DNS and IP subject alternative names of the peer's certificate, comma-separated (or its
/// common name when it has none) into `buffer`.
void torus_tls_peer_alt_names(SSL *ssl, char *buffer, size_t size);

/// The library, reason code and text of the error at the head of OpenSSL's error queue, and the
/// queue cleared. 0 when the queue was empty.
unsigned long torus_tls_pop_error(int *reason, char *text, size_t size);

/// The index of the SSL ex_data slot where a TLS stream keeps a pointer back to itself (for
/// the new-session callback).
int torus_tls_ex_data_index(void);

#endif
