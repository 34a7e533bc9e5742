/*
 * Ephemeral SSH key pairs for EC2 Instance Connect: an ed25519 key made
 * with OpenSSL, its private half written in OpenSSH's own format
 * ("-----BEGIN OPENSSH PRIVATE KEY-----", unencrypted, as ssh-keygen
 * writes it; libssh2, and so the manager's connector, reads it from
 * memory) and its public half as an authorized_keys line for
 * SendSSHPublicKey.  ed25519 rather than the official plugin's RSA: the
 * manager's libssh2 signs RSA keys with SHA-1 only, which OpenSSH 8.8+
 * refuses (manager/connector.c).
 */
#ifndef FL_AWS_SSHKEY_H
#define FL_AWS_SSHKEY_H

#include <stddef.h>
#include <stdint.h>

/*
 * A new key pair.  *priv (priv_len bytes, NUL-terminated) is the private
 * key (wipe with freezero), *pub "ssh-ed25519 BASE64 COMMENT".  0 or
 * FL_ERR_INTERNAL (OpenSSL failed).
 */
int aws_sshkey_new(const char *comment, char **priv, size_t *priv_len,
    char **pub);

/* The same from raw key material (deterministic, for tests). */
void aws_sshkey_format(const uint8_t seed[32], const uint8_t pubkey[32],
    uint32_t check, const char *comment, char **priv, size_t *priv_len,
    char **pub);

#endif
