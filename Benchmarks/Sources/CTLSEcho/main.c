// c-tls-echo: a plain C OpenSSL echo server, the reference "OpenSSL doing the same work" for
// the bulk cell of `Benchmarks/run --https` (echo-server --tls-cert ... beside it).
//
//   c-tls-echo --tls-cert FILE --tls-key FILE [--host 127.0.0.1] [--port 0] [--buffer 16384]
//              [--release-buffers 0|1]
//
// One thread, blocking sockets, one connection at a time: accept, SSL_accept, then SSL_read
// into one buffer and SSL_write of what was read, until the peer ends the stream; then
// SSL_shutdown and the next connection. OpenSSL's defaults otherwise (TLS 1.2 to 1.3, its
// cipher order, session tickets), with the socket BIO OpenSSL makes for the descriptor, so
// this is OpenSSL's own record layer and socket I/O with nothing around it. Prints
// "listening on PORT". `--release-buffers 1` sets SSL_MODE_RELEASE_BUFFERS, as TorusTLS does
// (OpenSSL frees a connection's record buffers whenever they are empty), to measure what that
// costs on its own. SIGTERM ends it (default action). Loopback is not enforced: the
// script binds it to 127.0.0.1.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static void usage(void) {
    fprintf(stderr, "usage: c-tls-echo --tls-cert FILE --tls-key FILE [--host ADDRESS] [--port PORT] [--buffer BYTES]\n"
                    "                  [--release-buffers 0|1]\n");
    exit(2);
}

// Prints OpenSSL's error queue after `what`, and exits.
static void fail_ssl(const char *what) {
    fprintf(stderr, "c-tls-echo: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

// Serves one accepted connection: handshake, echo until end of stream, close_notify.
static void serve(SSL_CTX *context, int fd, unsigned char *buffer, int size) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL *ssl = SSL_new(context);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        ERR_clear_error();
        if (ssl) SSL_free(ssl);
        close(fd);
        return;
    }
    if (SSL_accept(ssl) == 1) {
        for (;;) {
            int n = SSL_read(ssl, buffer, size);
            if (n <= 0) break;  // close_notify, a reset or an error: this connection is done
            // Without SSL_MODE_ENABLE_PARTIAL_WRITE (off by default) a blocking SSL_write
            // returns only once all n bytes are written.
            if (SSL_write(ssl, buffer, n) != n) break;
        }
        SSL_shutdown(ssl);
    }
    ERR_clear_error();  // a client that leaves without close_notify is not this server's error
    SSL_free(ssl);
    close(fd);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = 0, size = 16384, release_buffers = 0;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--tls-cert") == 0) cert = argv[i + 1];
        else if (strcmp(argv[i], "--tls-key") == 0) key = argv[i + 1];
        else if (strcmp(argv[i], "--buffer") == 0) size = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--release-buffers") == 0) release_buffers = atoi(argv[i + 1]);
        else usage();
    }
    if (cert == NULL || key == NULL || size <= 0) usage();
    signal(SIGPIPE, SIG_IGN);  // a peer gone mid-write is an error return, not a signal

    SSL_CTX *context = SSL_CTX_new(TLS_server_method());
    if (context == NULL) fail_ssl("cannot make a context");
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    if (release_buffers) SSL_CTX_set_mode(context, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(context, cert) != 1) fail_ssl("cannot load the certificate chain");
    if (SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) != 1) fail_ssl("cannot load the private key");
    if (SSL_CTX_check_private_key(context) != 1) fail_ssl("the key is not the certificate's");

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) { perror("socket"); return 1; }
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) { fprintf(stderr, "c-tls-echo: bad host %s\n", host); return 2; }
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0) { perror("bind"); return 1; }
    if (listen(listener, 4096) != 0) { perror("listen"); return 1; }
    socklen_t length = sizeof address;
    getsockname(listener, (struct sockaddr *)&address, &length);
    printf("listening on %d\n", ntohs(address.sin_port));
    fflush(stdout);

    unsigned char *buffer = malloc((size_t)size);
    if (buffer == NULL) return 1;
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            perror("accept");
            return 1;
        }
        serve(context, fd, buffer, size);
    }
}
