/*
 * ed25519 key pairs in OpenSSH's formats (see aws_sshkey.h).  The private
 * key file is PROTOCOL.key's "openssh-key-v1": magic, cipher "none", kdf
 * "none", one public key blob, then the private section (two equal check
 * words, the key type, public key, seed||public key, comment, padding
 * 1, 2, 3... to a multiple of 8), base64 in lines of 70.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "aws_sshkey.h"
#include "err.h"
#include "xmalloc.h"

static void
put_u32(struct sbuf *b, uint32_t v)
{
	uint8_t p[4] = { v >> 24, v >> 16, v >> 8, v };

	sbuf_add(b, p, 4);
}

static void
put_str(struct sbuf *b, const void *s, size_t n)
{
	put_u32(b, (uint32_t)n);
	sbuf_add(b, s, n);
}

/* Base64 of n bytes (heap, NUL-terminated). */
static char *
b64(const void *data, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, data, (int)n);
	return out;
}

void
aws_sshkey_format(const uint8_t seed[32], const uint8_t pubkey[32],
    uint32_t check, const char *comment, char **priv, size_t *priv_len,
    char **pub)
{
	static const char type[] = "ssh-ed25519";
	struct sbuf blob, sec, file, out;
	uint8_t both[64];
	char *enc;
	size_t n;

	sbuf_init(&blob);
	put_str(&blob, type, strlen(type));
	put_str(&blob, pubkey, 32);

	sbuf_init(&sec);
	put_u32(&sec, check);
	put_u32(&sec, check);
	put_str(&sec, type, strlen(type));
	put_str(&sec, pubkey, 32);
	memcpy(both, seed, 32);
	memcpy(both + 32, pubkey, 32);
	put_str(&sec, both, 64);
	explicit_bzero(both, sizeof(both));
	put_str(&sec, comment, strlen(comment));
	for (uint8_t pad = 1; sec.len % 8 != 0; pad++)
		sbuf_addch(&sec, pad);

	sbuf_init(&file);
	sbuf_add(&file, "openssh-key-v1", 15);	/* with its NUL */
	put_str(&file, "none", 4);
	put_str(&file, "none", 4);
	put_str(&file, "", 0);
	put_u32(&file, 1);
	put_str(&file, blob.buf, blob.len);
	put_str(&file, sec.buf, sec.len);
	freezero(sec.buf, sec.cap);

	enc = b64(file.buf, file.len);
	freezero(file.buf, file.cap);
	sbuf_init(&out);
	sbuf_adds(&out, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
	n = strlen(enc);
	for (size_t i = 0; i < n; i += 70) {
		sbuf_add(&out, enc + i, n - i < 70 ? n - i : 70);
		sbuf_addch(&out, '\n');
	}
	sbuf_adds(&out, "-----END OPENSSH PRIVATE KEY-----\n");
	freezero(enc, n);
	*priv = sbuf_detach(&out, priv_len);

	enc = b64(blob.buf, blob.len);
	*pub = xasprintf("%s %s %s", type, enc, comment);
	free(enc);
	sbuf_release(&blob);
}

int
aws_sshkey_new(const char *comment, char **priv, size_t *priv_len, char **pub)
{
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *ctx;
	uint8_t seed[32], pubkey[32];
	size_t sl = sizeof(seed), pl = sizeof(pubkey);
	uint32_t check;
	int ok;

	ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	ok = ctx != NULL && EVP_PKEY_keygen_init(ctx) == 1 &&
	    EVP_PKEY_keygen(ctx, &k) == 1 &&
	    EVP_PKEY_get_raw_private_key(k, seed, &sl) == 1 && sl == 32 &&
	    EVP_PKEY_get_raw_public_key(k, pubkey, &pl) == 1 && pl == 32 &&
	    RAND_bytes((unsigned char *)&check, sizeof(check)) == 1;
	EVP_PKEY_free(k);
	EVP_PKEY_CTX_free(ctx);
	if (ok)
		aws_sshkey_format(seed, pubkey, check, comment, priv, priv_len,
		    pub);
	explicit_bzero(seed, sizeof(seed));
	return ok ? 0 : FL_ERR_INTERNAL;
}
