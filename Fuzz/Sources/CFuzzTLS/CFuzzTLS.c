#include "CFuzzTLS.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// MARK: Throwaway identities

/// The PEM text `bio` holds, as a C string to free.
static char *bio_text(BIO *bio) {
    char *data = NULL;
    long length = BIO_get_mem_data(bio, &data);
    if (length <= 0) return NULL;
    char *text = malloc((size_t)length + 1);
    if (text == NULL) return NULL;
    memcpy(text, data, (size_t)length);
    text[length] = 0;
    return text;
}

static int add_alt_names(X509 *certificate, const char *names) {
    // "localhost,*.fuzz.test" becomes "DNS:localhost,DNS:*.fuzz.test".
    char value[512] = "";
    char copy[256];
    snprintf(copy, sizeof copy, "%s", names);
    for (char *save = NULL, *name = strtok_r(copy, ",", &save); name != NULL; name = strtok_r(NULL, ",", &save)) {
        if (value[0] != 0) strncat(value, ",", sizeof value - strlen(value) - 1);
        strncat(value, "DNS:", sizeof value - strlen(value) - 1);
        strncat(value, name, sizeof value - strlen(value) - 1);
    }
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, certificate, certificate, NULL, NULL, 0);
    X509_EXTENSION *extension = X509V3_EXT_conf_nid(NULL, &context, NID_subject_alt_name, value);
    if (extension == NULL) return 0;
    int ok = X509_add_ext(certificate, extension, -1);
    X509_EXTENSION_free(extension);
    return ok;
}

static X509 *self_signed(EVP_PKEY *key, const char *names) {
    X509 *certificate = X509_new();
    if (certificate == NULL) return NULL;
    char common_name[256];
    snprintf(common_name, sizeof common_name, "%s", names);
    common_name[strcspn(common_name, ",")] = 0;
    X509_NAME *subject = X509_get_subject_name(certificate);
    int ok = X509_set_version(certificate, X509_VERSION_3)
        && ASN1_INTEGER_set(X509_get_serialNumber(certificate), 1)
        && X509_gmtime_adj(X509_getm_notBefore(certificate), -24L * 3600)
        && X509_gmtime_adj(X509_getm_notAfter(certificate), 10L * 365 * 24 * 3600)
        && X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0)
        && X509_set_issuer_name(certificate, subject)
        && X509_set_pubkey(certificate, key)
        && add_alt_names(certificate, names)
        && X509_sign(certificate, key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(certificate);
        return NULL;
    }
    return certificate;
}

int fuzz_tls_make_identity(const char *names, char **certificate_pem, char **key_pem) {
    *certificate_pem = NULL;
    *key_pem = NULL;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL) return 0;
    X509 *certificate = self_signed(key, names);
    BIO *certificate_bio = BIO_new(BIO_s_mem());
    BIO *key_bio = BIO_new(BIO_s_mem());
    int ok = certificate != NULL && certificate_bio != NULL && key_bio != NULL
        && PEM_write_bio_X509(certificate_bio, certificate)
        && PEM_write_bio_PrivateKey(key_bio, key, NULL, NULL, 0, NULL, NULL);
    if (ok) {
        *certificate_pem = bio_text(certificate_bio);
        *key_pem = bio_text(key_bio);
        ok = *certificate_pem != NULL && *key_pem != NULL;
    }
    BIO_free(certificate_bio);
    BIO_free(key_bio);
    X509_free(certificate);
    EVP_PKEY_free(key);
    return ok;
}

// MARK: Extra coverage

// libFuzzer reads this section as extra coverage counters (and clears it before each run).
#define COUNTERS 4096
__attribute__((used, section("__libfuzzer_extra_counters")))
static uint8_t counters[COUNTERS];

void fuzz_tls_note(uint64_t feature) {
    // A multiplicative hash, so that nearby numbers land apart.
    uint64_t slot = (feature * 0x9E3779B97F4A7C15ull) >> 52;   // 12 bits: 0..4095
    if (counters[slot] < 255) counters[slot]++;
}
