/* Fuzzes everything that parses key material from outside: private key
 * files (openssh-key-v1 armored or binary, PEM through libcrypto) with no
 * passphrase and with a wrong one, public key blobs and .pub lines. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "keys/key_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static void use(shoal_key *k)
{
    char fp[64];
    if (!k)
        return;
    if (shoal_key_fingerprint(k, fp, sizeof(fp)) == SHOAL_OK)
        sink += (unsigned char)fp[7];
    sink += shoal_key_bits(k) + (unsigned)shoal_key_has_private(k);
    shoal_key_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    shoal_key *k = NULL;
    /* Each bcrypt round costs milliseconds: keep inputs fast. */
    shoal_keyfile_openssh_set_max_rounds(2);

    sink += (unsigned)shoal_key_file_is_encrypted(data, size);
    shoal_key_load_private(data, size, NULL, &k);
    use(k);
    /* A wrong passphrase drives the KDF and decryption paths of our own
     * openssh-key-v1 code. Encrypted PEM is libcrypto's parser, whose PBKDF2
     * iteration count comes from the file: skip it, it only burns time. */
    if (size < 9 || !memmem(data, size, "ENCRYPTED", 9)) {
        k = NULL;
        shoal_key_load_private(data, size, "x", &k);
        use(k);
    }
    k = NULL;
    shoal_key_from_blob(data, size, &k);
    use(k);
    k = NULL;
    shoal_key_from_public_text((const char *)data, size, &k);
    use(k);
    return 0;
}
