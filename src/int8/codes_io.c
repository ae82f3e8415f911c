/* How the int8 exports store int8 codes (int8_internal.h): a (rows, cols) table of codes is
 * "<prefix>.weight_q" I8, or, when the codes take at most 16 distinct values (weights at 4 bits
 * or fewer, power-of-two and codebook rules), "<prefix>.weight_codebook" I8 (2^b codes,
 * ascending, padded with the largest) and "<prefix>.weight_idx" U8 (rows, ceil(cols b / 8)): the
 * index of every code in b = 1, 2, 3 or 4 bits, a little-endian bit stream (index k of a row at
 * bits [k b, k b + b), the first in the low bits of a byte; a 3-bit index may straddle two
 * bytes), every row starting on a new byte. Reading gives back the same codes either way. Used for
 * the linears of both exports and for the GPT's int8 embeddings. */
#include <stdio.h>
#include <string.h>

#include "int8_internal.h"

/* The index width of codes w (n): 1, 2, 3 or 4 when they take at most 16 values, with book
 * filled; 0 otherwise. */
static int codebook(const int8_t *w, size_t n, int8_t book[16]) {
    bool seen[256] = {false};
    for (size_t i = 0; i < n; i++) seen[w[i] + 128] = true;
    int k = 0;
    for (int v = 0; v < 256; v++)
        if (seen[v]) {
            if (k == 16) return 0;
            book[k++] = (int8_t)(v - 128);
        }
    int bits = k <= 2 ? 1 : k <= 4 ? 2 : k <= 8 ? 3 : 4;
    for (int i = k; i < 1 << bits; i++) book[i] = book[k - 1];
    return bits;
}

int oct_i8_index_bits(int64_t n) {
    return n == 2 ? 1 : n == 4 ? 2 : n == 8 ? 3 : n == 16 ? 4 : 0;
}

static size_t index_row_bytes(int cols, int bits) {
    return ((size_t)cols * (size_t)bits + 7) / 8;
}

static void pack_indices(const int8_t *w, int rows, int cols, const int8_t *book, int bits,
                         uint8_t *idx) {
    uint8_t index[256];
    for (int i = (1 << bits) - 1; i >= 0; i--) index[book[i] + 128] = (uint8_t)i;
    size_t rb = index_row_bytes(cols, bits);
    memset(idx, 0, rb * (size_t)rows);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) {
            size_t bit = (size_t)k * (size_t)bits;
            unsigned v = (unsigned)index[w[(size_t)r * cols + k] + 128] << bit % 8;
            uint8_t *p = idx + (size_t)r * rb + bit / 8;
            p[0] |= (uint8_t)v;
            if (v >> 8) p[1] |= (uint8_t)(v >> 8); /* a 3-bit index across two bytes */
        }
}

static void unpack_indices(const uint8_t *idx, int rows, int cols, const int8_t *book, int bits,
                           int8_t *w) {
    size_t rb = index_row_bytes(cols, bits);
    int mask = (1 << bits) - 1;
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = idx + (size_t)r * rb;
        for (int k = 0; k < cols; k++) {
            size_t bit = (size_t)k * (size_t)bits, byte = bit / 8;
            unsigned v = row[byte] | (byte + 1 < rb ? (unsigned)row[byte + 1] << 8 : 0u);
            w[(size_t)r * cols + k] = book[v >> bit % 8 & (unsigned)mask];
        }
    }
}

size_t oct__i8_codes_scratch(int rows, int cols) {
    return 16 + index_row_bytes(cols, 4) * (size_t)rows;
}

oct_status oct__i8_codes_add(oct_st_writer *w, const char *prefix, const int8_t *codes, int rows,
                             int cols, uint8_t *scratch) {
    int8_t *book = (int8_t *)scratch;
    uint8_t *idx = scratch + 16;
    int bits = codebook(codes, (size_t)rows * (size_t)cols, book);
    char name[96];
    if (!bits) {
        int shape[2] = {rows, cols};
        snprintf(name, sizeof name, "%s.weight_q", prefix);
        return oct_st_writer_add(w, name, OCT_DT_I8, 2, shape, codes);
    }
    pack_indices(codes, rows, cols, book, bits, idx);
    int ishape[2] = {rows, (int)index_row_bytes(cols, bits)}, bshape = 1 << bits;
    snprintf(name, sizeof name, "%s.weight_idx", prefix);
    oct_status s = oct_st_writer_add(w, name, OCT_DT_U8, 2, ishape, idx);
    snprintf(name, sizeof name, "%s.weight_codebook", prefix);
    if (s == OCT_OK) s = oct_st_writer_add(w, name, OCT_DT_I8, 1, &bshape, book);
    return s;
}

bool oct__i8_codes_packed(const oct__i8_loader *ld, const char *prefix) {
    char name[96];
    snprintf(name, sizeof name, "%s.weight_idx", prefix);
    return oct_st_find(&ld->f, name) != NULL;
}

oct_status oct__i8_codes_read(const oct__i8_loader *ld, const char *prefix, int rows, int cols,
                              int8_t *out, int *n_tensors) {
    char name[96];
    const void *d;
    if (!oct__i8_codes_packed(ld, prefix)) {
        int shape[2] = {rows, cols};
        snprintf(name, sizeof name, "%s.weight_q", prefix);
        oct_status s = oct_st_get(&ld->f, name, OCT_DT_I8, 2, shape, &d);
        if (s == OCT_OK) memcpy(out, d, (size_t)rows * (size_t)cols);
        *n_tensors += 1;
        return s;
    }
    snprintf(name, sizeof name, "%s.weight_codebook", prefix);
    const oct_st_entry *e = oct_st_find(&ld->f, name);
    if (!e) return oct_fail(OCT_ENOTFOUND, "%s: tensor \"%s\" not found", ld->path, name);
    int bits = e->ndim == 1 ? oct_i8_index_bits(e->numel) : 0;
    if (!bits)
        return oct_fail(OCT_ESHAPE,
                        "%s: %s must hold 2, 4, 8 or 16 codes (1-D), it has %lld values", ld->path,
                        name, (long long)e->numel);
    if (e->dtype != OCT_DT_I8)
        return oct_fail(OCT_EFORMAT, "%s: %s must be I8, found %s", ld->path, name,
                        oct_dtype_name(e->dtype));
    const int8_t *book = e->data;
    int shape[2] = {rows, (int)index_row_bytes(cols, bits)};
    snprintf(name, sizeof name, "%s.weight_idx", prefix);
    oct_status s = oct_st_get(&ld->f, name, OCT_DT_U8, 2, shape, &d);
    if (s == OCT_OK) unpack_indices(d, rows, cols, book, bits, out);
    *n_tensors += 2;
    return s;
}
