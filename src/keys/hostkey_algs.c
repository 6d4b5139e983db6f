/* Host key signature algorithms we can verify, in OpenSSH 9's order.
 * ssh-rsa (SHA-1 signatures) is supported but never offered by default. */
#include "keys/key.h"

const char SHOAL_HOSTKEY_ALGS_DEFAULT[] = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
                                          "ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256";
const char SHOAL_HOSTKEY_ALGS_ALL[] = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
                                      "ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,ssh-rsa";
