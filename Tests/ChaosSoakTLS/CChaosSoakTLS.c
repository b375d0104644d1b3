// Wrappers for the OpenSSL macros the chaos soak client needs; see CChaosSoakTLS.h.
#include "CChaosSoakTLS.h"

#include <string.h>

int chaos_tls_set_version_range(SSL_CTX *context, int minimum, int maximum) {
    return SSL_CTX_set_min_proto_version(context, minimum) == 1
        && SSL_CTX_set_max_proto_version(context, maximum) == 1;
}

int chaos_tls_set_server_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

void chaos_tls_memory_bio_retries_when_empty(BIO *bio) {
    BIO_set_mem_eof_return(bio, -1);
}

int chaos_tls_take_errors(char *buffer, size_t capacity) {
    if (capacity == 0) return 0;
    buffer[0] = '\0';
    size_t used = 0;
    int count = 0;
    unsigned long error;
    while ((error = ERR_get_error()) != 0) {
        char entry[256];
        ERR_error_string_n(error, entry, sizeof entry);
        // Append "; " between entries, as much as fits; the rest of the queue is still drained.
        const char *separator = count > 0 ? "; " : "";
        size_t need = strlen(separator) + strlen(entry);
        if (used + need < capacity) {
            strcpy(buffer + used, separator);
            strcpy(buffer + used + strlen(separator), entry);
            used += need;
        }
        count += 1;
    }
    return count;
}
