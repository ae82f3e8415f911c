/* Text corpora for character-level language models: a byte vocabulary, prompt encoding and
 * decoding, a 90/10 train/validation split, and random (input, target) windows.
 *
 * A file is read whole and encoded in place: its bytes become token ids (the rank of each byte
 * value among the values present, or the byte itself in byte-level mode).
 */
#include "octet/data.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/core/file.h"

void oct_vocab_bytes(oct_vocab *v) {
    v->size = 256;
    for (int i = 0; i < 256; i++) {
        v->bytes[i] = (uint8_t)i;
        v->id[i] = (int16_t)i;
    }
}

oct_status oct_vocab_from_bytes(oct_vocab *v, const uint8_t *bytes, int n) {
    if (n < 1 || n > 256)
        return oct_fail(OCT_EINVAL, "vocabulary: %d entries, expected 1 to 256", n);
    for (int i = 1; i < n; i++) {
        if (bytes[i] <= bytes[i - 1])
            return oct_fail(OCT_EINVAL,
                            "vocabulary: entry %d (0x%02x) does not follow 0x%02x in increasing "
                            "byte order",
                            i, bytes[i], bytes[i - 1]);
    }
    v->size = n;
    for (int b = 0; b < 256; b++) v->id[b] = -1;
    memset(v->bytes, 0, sizeof v->bytes);
    for (int i = 0; i < n; i++) {
        v->bytes[i] = bytes[i];
        v->id[bytes[i]] = (int16_t)i;
    }
    return OCT_OK;
}

/* The error for byte c at offset i, which the vocabulary v lacks. */
static oct_status not_in_vocab(const oct_vocab *v, uint8_t c, int64_t i) {
    if (c < 0x80 && isprint(c))
        return oct_fail(OCT_EINVAL,
                        "character '%c' (byte 0x%02x) at offset %lld is not in the vocabulary of "
                        "%d characters",
                        c, c, (long long)i, v->size);
    return oct_fail(OCT_EINVAL,
                    "byte 0x%02x at offset %lld is not in the vocabulary of %d characters", c,
                    (long long)i, v->size);
}

oct_status oct_vocab_encode(const oct_vocab *v, const char *s, int64_t n, int32_t *ids /* (n) */) {
    for (int64_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (v->id[c] < 0) return not_in_vocab(v, c, i);
        ids[i] = v->id[c];
    }
    return OCT_OK;
}

void oct_vocab_decode(const oct_vocab *v, const int32_t *ids /* (n) */, int64_t n, char *out) {
    for (int64_t i = 0; i < n; i++) {
        OCT_ASSERT(ids[i] >= 0 && ids[i] < v->size);
        out[i] = (char)v->bytes[ids[i]];
    }
    out[n] = '\0';
}

/* Reads the whole regular file at path into a new buffer of *n bytes (1 to the limit). */
static oct_status read_file(const char *path, uint8_t **out, int64_t *n) {
    int fd;
    int64_t size;
    oct_status status = oct__open_regular(path, &fd, &size);
    if (status != OCT_OK) return status;
    uint8_t *buf = NULL;
    if (size == 0)
        status = oct_fail(OCT_EFORMAT, "%s: file is empty", path);
    else if (size > OCT_TEXT_MAX_BYTES)
        status = oct_fail(OCT_EFORMAT, "%s: %lld bytes, more than the limit of %lld (1 GiB)", path,
                          (long long)size, (long long)OCT_TEXT_MAX_BYTES);
    else if (!(buf = malloc((size_t)size)))
        status = oct_fail(OCT_ENOMEM, "%s: cannot allocate %lld bytes", path, (long long)size);
    if (status == OCT_OK) status = oct__read_at(path, fd, buf, (size_t)size, 0);
    close(fd);
    if (status != OCT_OK) {
        free(buf);
        return status;
    }
    *out = buf;
    *n = size;
    return OCT_OK;
}

oct_status oct_text_load(oct_text *t, const char *path, bool byte_level) {
    memset(t, 0, sizeof *t);
    uint8_t *buf = NULL;
    int64_t n = 0;
    oct_status st = read_file(path, &buf, &n);
    if (st != OCT_OK) return st;
    if (byte_level) {
        oct_vocab_bytes(&t->vocab);
    } else {
        bool present[256] = {false};
        for (int64_t i = 0; i < n; i++) present[buf[i]] = true;
        uint8_t bytes[256];
        int size = 0;
        for (int b = 0; b < 256; b++)
            if (present[b]) bytes[size++] = (uint8_t)b;
        st = oct_vocab_from_bytes(&t->vocab, bytes, size);
        OCT_ASSERT(st == OCT_OK); /* 1..256 increasing bytes by construction */
    }
    for (int64_t i = 0; i < n; i++) buf[i] = (uint8_t)t->vocab.id[buf[i]];
    t->tokens = buf;
    t->n = n;
    t->n_train = n * 9 / 10;
    return OCT_OK;
}

oct_status oct_text_recode(oct_text *t, const oct_vocab *v) {
    int16_t map[256]; /* old id -> new id */
    bool missing = false;
    for (int i = 0; i < t->vocab.size; i++) {
        map[i] = v->id[t->vocab.bytes[i]];
        missing |= map[i] < 0;
    }
    for (int64_t i = 0; missing && i < t->n; i++)
        if (map[t->tokens[i]] < 0) return not_in_vocab(v, t->vocab.bytes[t->tokens[i]], i);
    for (int64_t i = 0; i < t->n; i++) t->tokens[i] = (uint8_t)map[t->tokens[i]];
    t->vocab = *v;
    return OCT_OK;
}

void oct_text_free(oct_text *t) {
    if (!t) return;
    free(t->tokens);
    memset(t, 0, sizeof *t);
}

int64_t oct_text_split_size(const oct_text *t, oct_split split) {
    return split == OCT_SPLIT_TRAIN ? t->n_train : t->n - t->n_train;
}

/* Fails unless split holds a window of T + 1 tokens. */
static oct_status check_window(const oct_text *t, oct_split split, int T) {
    int64_t len = oct_text_split_size(t, split);
    if (len >= (int64_t)T + 1) return OCT_OK;
    return oct_fail(OCT_EINVAL,
                    "text: the %s split holds %lld tokens, fewer than the window length "
                    "T + 1 = %lld",
                    split == OCT_SPLIT_TRAIN ? "training" : "validation", (long long)len,
                    (long long)T + 1);
}

/* Row b of x and y: the window of T inputs at w and its targets. */
static void put_window(const uint8_t *w, int b, int T, int32_t *x, int32_t *y) {
    for (int i = 0; i < T; i++) {
        x[(int64_t)b * T + i] = w[i];
        y[(int64_t)b * T + i] = w[i + 1];
    }
}

oct_status oct_text_batch(const oct_text *t, oct_split split, oct_rng *rng, int B, int T,
                          int32_t *x, /* (B,T) */
                          int32_t *y /* (B,T) */) {
    OCT_ASSERT(B >= 1 && T >= 1);
    oct_status s = check_window(t, split, T);
    if (s != OCT_OK) return s;
    int64_t len = oct_text_split_size(t, split);
    const uint8_t *base = t->tokens + (split == OCT_SPLIT_TRAIN ? 0 : t->n_train);
    for (int b = 0; b < B; b++) /* len - T <= 1 GiB fits the uint32 range of oct_rng_below */
        put_window(base + oct_rng_below(rng, (uint32_t)(len - T)), b, T, x, y);
    return OCT_OK;
}

int64_t oct_text_window_count(const oct_text *t, oct_split split, int T, int stride) {
    OCT_ASSERT(T >= 1 && stride >= 1);
    int64_t room = oct_text_split_size(t, split) - 1 - T; /* start of the last window that fits */
    return room < 0 ? 0 : room / stride + 1;
}

oct_status oct_text_windows(const oct_text *t, oct_split split, int64_t first, int stride, int B,
                            int T, int32_t *x, int32_t *y, int *n) {
    OCT_ASSERT(B >= 1 && T >= 1 && first >= 0);
    oct_status s = check_window(t, split, T);
    if (s != OCT_OK) return s;
    const uint8_t *base = t->tokens + (split == OCT_SPLIT_TRAIN ? 0 : t->n_train);
    int64_t total = oct_text_window_count(t, split, T, stride);
    *n = 0;
    for (int64_t k = first; k < total && *n < B; k++)
        put_window(base + k * stride, (*n)++, T, x, y);
    return OCT_OK;
}
