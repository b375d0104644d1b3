#include "CTorusTLS.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// MARK: The transport BIO

static BIO_METHOD *transport_method;
static int ex_data_index = -1;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

static int transport_read(BIO *bio, char *out, int size) {
    torus_tls_transport *transport = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (size <= 0) return 0;
    if (transport->input_length == 0) {
        if (transport->input_ended) return 0;   // end of file: OpenSSL decides if it was clean
        BIO_set_retry_read(bio);                 // "would block": the stream receives more
        return -1;
    }
    size_t count = transport->input_length < (size_t)size ? transport->input_length : (size_t)size;
    memcpy(out, transport->input, count);
    transport->input += count;
    transport->input_length -= count;
    return (int)count;
}

static int transport_write(BIO *bio, const char *in, int size) {
    torus_tls_transport *transport = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (size <= 0) return 0;
    size_t needed = transport->output_length + (size_t)size;
    if (needed > transport->output_capacity) {
        // Grow geometrically from one full record with its overhead.
        size_t capacity = transport->output_capacity ? transport->output_capacity : 17 * 1024;
        while (capacity < needed) capacity *= 2;
        uint8_t *grown = realloc(transport->output, capacity);
        if (grown == NULL) return -1;
        transport->output = grown;
        transport->output_capacity = capacity;
    }
    memcpy(transport->output + transport->output_length, in, (size_t)size);
    transport->output_length = needed;
    return size;
}

static long transport_ctrl(BIO *bio, int command, long number, void *pointer) {
    (void)number; (void)pointer;
    torus_tls_transport *transport = BIO_get_data(bio);
    switch (command) {
    case BIO_CTRL_FLUSH: return 1;               // everything written is already taken
    case BIO_CTRL_PENDING: return (long)transport->input_length;
    case BIO_CTRL_WPENDING: return 0;
    case BIO_CTRL_EOF: return transport->input_ended && transport->input_length == 0;
    default: return 0;
    }
}

static int transport_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

static int transport_destroy(BIO *bio) {
    // The transport belongs to the stream, not to the BIO.
    BIO_set_data(bio, NULL);
    return 1;
}

static void setup(void) {
    int type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
    BIO_METHOD *method = BIO_meth_new(type, "torus transport");
    if (method != NULL) {
        BIO_meth_set_read(method, transport_read);
        BIO_meth_set_write(method, transport_write);
        BIO_meth_set_ctrl(method, transport_ctrl);
        BIO_meth_set_create(method, transport_create);
        BIO_meth_set_destroy(method, transport_destroy);
    }
    transport_method = method;
    ex_data_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

SSL *torus_tls_new_ssl(SSL_CTX *context, torus_tls_transport *transport) {
    pthread_once(&setup_once, setup);
    if (transport_method == NULL) return NULL;
    SSL *ssl = SSL_new(context);
    if (ssl == NULL) return NULL;
    BIO *bio = BIO_new(transport_method);
    if (bio == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_data(bio, transport);
    // One BIO for both directions; SSL_free frees it.
    SSL_set_bio(ssl, bio, bio);
    return ssl;
}

uint8_t *torus_tls_take_output(torus_tls_transport *transport, size_t *length, size_t *capacity) {
    uint8_t *output = transport->output;
    *length = transport->output_length;
    *capacity = transport->output_capacity;
    if (transport->output_length == 0) {
        *length = 0;
        *capacity = 0;
        return NULL;
    }
    transport->output = NULL;
    transport->output_length = 0;
    transport->output_capacity = 0;
    return output;
}

void torus_tls_return_output(torus_tls_transport *transport, uint8_t *output, size_t capacity, size_t keep_capacity) {
    if (transport->output == NULL && capacity <= keep_capacity) {
        transport->output = output;
        transport->output_capacity = capacity;
        transport->output_length = 0;
    } else {
        free(output);
    }
}

void torus_tls_reset_output(torus_tls_transport *transport, size_t keep_capacity) {
    transport->output_length = 0;
    if (transport->output_capacity > keep_capacity) {
        free(transport->output);
        transport->output = NULL;
        transport->output_capacity = 0;
    }
}

int torus_tls_ex_data_index(void) {
    pthread_once(&setup_once, setup);
    return ex_data_index;
}

// MARK: Macros

int torus_tls_set_min_version(SSL_CTX *context, int version) {
    return (int)SSL_CTX_set_min_proto_version(context, version);
}

int torus_tls_set_max_version(SSL_CTX *context, int version) {
    return (int)SSL_CTX_set_max_proto_version(context, version);
}

int torus_tls_set_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

void torus_tls_set_modes(SSL_CTX *context) {
    // The record buffers OpenSSL keeps per connection are given back while it is idle (idle
    // memory per connection counts), and a write never stops part-way: the transport takes
    // every byte, so SSL_write has no reason to.
    SSL_CTX_set_mode(context, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_clear_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE);
}

void torus_tls_set_client_session_cache(SSL_CTX *context) {
    // Sessions are handed to the new-session callback, which keeps them per server name; the
    // internal store is for servers.
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
}

void torus_tls_set_safe_options(SSL_CTX *context) {
    SSL_CTX_set_options(context, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION
                                 | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
}

void torus_tls_set_server_session_cache_size(SSL_CTX *context, long size) {
    SSL_CTX_sess_set_cache_size(context, size);
}

void torus_tls_disable_resumption(SSL_CTX *context) {
    SSL_CTX_set_options(context, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(context, 0);
}

// MARK: Keys and certificates

int torus_tls_use_certificate_chain(SSL_CTX *context, const void *pem, size_t length) {
    BIO *bio = BIO_new_mem_buf(pem, (int)length);
    if (bio == NULL) return -1;
    int count = 0;
    X509 *certificate;
    while ((certificate = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        int ok = count == 0 ? SSL_CTX_use_certificate(context, certificate)
                            : (int)SSL_CTX_add1_chain_cert(context, certificate);
        X509_free(certificate);
        if (!ok) {
            BIO_free(bio);
            return -1;
        }
        count++;
    }
    BIO_free(bio);
    // The loop ends on "no start line" once the PEM is used up; that is not an error.
    if (count > 0) ERR_clear_error();
    return count > 0 ? count : -1;
}

int torus_tls_use_private_key(SSL_CTX *context, const void *pem, size_t length) {
    BIO *bio = BIO_new_mem_buf(pem, (int)length);
    if (bio == NULL) return 0;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (key == NULL) return 0;
    int ok = SSL_CTX_use_PrivateKey(context, key);
    EVP_PKEY_free(key);
    return ok;
}

int torus_tls_add_trusted_certificates(SSL_CTX *context, const void *pem, size_t length, int as_client_ca) {
    BIO *bio = BIO_new_mem_buf(pem, (int)length);
    if (bio == NULL) return -1;
    X509_STORE *store = SSL_CTX_get_cert_store(context);
    int count = 0;
    X509 *certificate;
    while ((certificate = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(store, certificate);
        if (ok && as_client_ca) ok = SSL_CTX_add_client_CA(context, certificate);
        X509_free(certificate);
        if (!ok) {
            BIO_free(bio);
            return -1;
        }
        count++;
    }
    BIO_free(bio);
    if (count > 0) ERR_clear_error();
    return count > 0 ? count : -1;
}

// MARK: Callbacks

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *out_length,
                       const unsigned char *in, unsigned int in_length, void *argument) {
    (void)ssl;
    const torus_tls_alpn *alpn = argument;
    unsigned char *selected = NULL;
    // Server preference first: the server's list goes first.
    if (SSL_select_next_proto(&selected, out_length, alpn->protocols, alpn->length, in, in_length)
        != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

void torus_tls_set_alpn_server(SSL_CTX *context, const torus_tls_alpn *alpn) {
    SSL_CTX_set_alpn_select_cb(context, alpn_select, (void *)alpn);
}

static int name_matches(const char *pattern, const char *name) {
    if (strncmp(pattern, "*.", 2) == 0) {
        const char *dot = strchr(name, '.');
        // One label only: "*.example.com" matches "a.example.com", not "example.com" nor
        // "a.b.example.com".
        return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

static int server_name_select(SSL *ssl, int *alert, void *argument) {
    (void)alert;
    const torus_tls_server_names *table = argument;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL) return SSL_TLSEXT_ERR_OK;
    for (size_t index = 0; index < table->count; index++) {
        if (name_matches(table->names[index].name, name)) {
            SSL_set_SSL_CTX(ssl, table->names[index].context);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

void torus_tls_set_server_names(SSL_CTX *context, const torus_tls_server_names *table) {
    SSL_CTX_set_tlsext_servername_callback(context, server_name_select);
    SSL_CTX_set_tlsext_servername_arg(context, (void *)table);
}

void torus_tls_set_new_session_callback(SSL_CTX *context, torus_tls_new_session_callback callback) {
    SSL_CTX_sess_set_new_cb(context, callback);
}

// MARK: Certificates and errors

static X509 *peer_leaf(SSL *ssl) {
    // After a failed verification the peer's certificate is only in its chain.
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    if (leaf != NULL) return leaf;
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    return chain != NULL && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : NULL;
}

static void name_text(X509_NAME *name, char *buffer, size_t size) {
    buffer[0] = 0;
    if (name == NULL || size == 0) return;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) return;
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    int count = BIO_read(bio, buffer, (int)size - 1);
    buffer[count > 0 ? count : 0] = 0;
    BIO_free(bio);
}

void torus_tls_peer_names(SSL *ssl, char *subject, size_t subject_size, char *issuer, size_t issuer_size) {
    X509 *leaf = peer_leaf(ssl);
    name_text(leaf ? X509_get_subject_name(leaf) : NULL, subject, subject_size);
    name_text(leaf ? X509_get_issuer_name(leaf) : NULL, issuer, issuer_size);
}

static void append(char *buffer, size_t size, const char *text) {
    size_t used = strlen(buffer);
    if (used + 2 >= size) return;
    if (used > 0) {
        buffer[used++] = ',';
        buffer[used] = 0;
    }
    strncat(buffer, text, size - used - 1);
}

void torus_tls_peer_alt_names(SSL *ssl, char *buffer, size_t size) {
    if (size == 0) return;
    buffer[0] = 0;
    X509 *leaf = peer_leaf(ssl);
    if (leaf == NULL) return;
    GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    for (int index = 0; names != NULL && index < sk_GENERAL_NAME_num(names); index++) {
        const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, index);
        char text[INET6_ADDRSTRLEN + 8];
        if (name->type == GEN_DNS) {
            const unsigned char *data = ASN1_STRING_get0_data(name->d.dNSName);
            int length = ASN1_STRING_length(name->d.dNSName);
            if (length < 0 || (size_t)length >= sizeof text) continue;
            memcpy(text, data, (size_t)length);
            text[length] = 0;
            append(buffer, size, text);
        } else if (name->type == GEN_IPADD) {
            int length = ASN1_STRING_length(name->d.iPAddress);
            const unsigned char *data = ASN1_STRING_get0_data(name->d.iPAddress);
            int family = length == 4 ? AF_INET : length == 16 ? AF_INET6 : 0;
            if (family && inet_ntop(family, data, text, sizeof text)) append(buffer, size, text);
        }
    }
    GENERAL_NAMES_free(names);
    if (buffer[0] == 0) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, buffer, (int)size);
    }
}

unsigned long torus_tls_pop_error(int *reason, char *text, size_t size) {
    unsigned long first = ERR_get_error();
    if (size > 0) text[0] = 0;
    *reason = 0;
    if (first == 0) return 0;
    *reason = ERR_GET_REASON(first);
    const char *string = ERR_reason_error_string(first);
    if (string != NULL && size > 0) {
        strncpy(text, string, size - 1);
        text[size - 1] = 0;
    }
    ERR_clear_error();
    return first;
}
