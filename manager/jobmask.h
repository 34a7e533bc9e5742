/*
 * The job trace's masker: what GitLab Runner's log writer chain does to a
 * job's output before it reaches the trace (runner-jobs-docker.md §2.11
 * items 2-4), as a pure streaming filter.
 *
 * Three layers, applied in this order:
 *  1. masked phrases (the values of masked=true variables: trimmed of
 *     whitespace, empty ones skipped, duplicates merged) become
 *     "[MASKED]";
 *  2. the values of the URL query parameters private_token,
 *     authenticity_token, rss_token, X-Amz-Signature, X-Amz-Credential and
 *     X-Amz-Security-Token (after '?' or '&', name matched without regard
 *     to case) become "[MASKED]";
 *  3. a token after one of the token prefixes (glpat- always; with
 *     all_default_tokens the other GitLab prefixes; then the job's own,
 *     15 prefixes at most in all) keeps its prefix, and the rest of it,
 *     bytes of [0-9A-Za-z-._=], becomes "[MASKED]".
 *
 * Every layer works across write boundaries: whatever the split of the
 * stream into writes, the output is the same as for one write (until a
 * flush).  Layer 1 holds back at most (longest phrase - 1) bytes that
 * may still begin a secret (a whole occurrence waits one more byte, which
 * might extend it), the others a partly seen parameter name or prefix; a
 * token or value being masked is dropped as it comes, never held.
 *
 * Layer 1 differs from GitLab's one-matcher-per-phrase chain in one
 * respect, on purpose: every byte covered by an occurrence of any phrase
 * is hidden, and a run of covered bytes (overlapping or adjacent
 * occurrences, e.g. "aaa" for the phrase "aa", or "secretsecret") becomes
 * a single "[MASKED]".  So no part of an occurrence is ever shown, even
 * where phrases overlap.
 *
 * Secrets (phrases, and held-back bytes) are wiped when freed.
 */
#ifndef FL_JOBMASK_H
#define FL_JOBMASK_H

#include <stddef.h>

struct sbuf;
struct jobmask;

#define JOBMASK_TEXT		"[MASKED]"
/* Token prefixes used at most (GitLab's token masker's limit). */
#define JOBMASK_MAX_PREFIXES	15

/*
 * phrases: n secret values (copied; NULL entries and those empty once
 * trimmed are skipped); prefixes: the job's extra token prefixes
 * (features.token_mask_prefixes; empty ones skipped); all_default_tokens:
 * FF_MASK_ALL_DEFAULT_TOKENS.  Never NULL.
 */
struct jobmask *jobmask_new(const char *const *phrases, size_t n,
    const char *const *prefixes, size_t nprefixes, int all_default_tokens);
/* Mask len bytes; masked output is APPENDED to out.  Bytes that may be
 * the start of a secret are held back until decided. */
void jobmask_write(struct jobmask *m, const void *data, size_t len,
    struct sbuf *out);
/* Release what is held back (end of a stream, or before a runner
 * message is interleaved). */
void jobmask_flush(struct jobmask *m, struct sbuf *out);
/* Wipes; NULL no-op. */
void jobmask_free(struct jobmask *m);

/* Bytes currently held back (for tests). */
size_t jobmask_held(const struct jobmask *m);
/* The token prefixes in use, in order (for tests); *n set. */
const char *const *jobmask_prefixes(const struct jobmask *m, size_t *n);

#endif
