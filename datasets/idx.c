/* IDX image sets (the MNIST file format) read through zlib, and their conversion to float
 * batches.
 *
 * An IDX file is a 4-byte magic (two zero bytes, an element type, the number of dimensions),
 * one big-endian uint32 per dimension, then the elements. gzread reads gzip'ed and raw files
 * alike. Nothing in a file is trusted: the header is validated before anything is allocated,
 * the payload buffer grows only as data actually arrives, and a final one-byte read checks
 * that the data ends where the header says (which is also when zlib verifies the gzip CRC).
 */
#include "octet/data.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../src/core/file.h"

#define IDX_UBYTE 0x08
#define IDX_MAX_DIMS 3
#define GZ_BUFFER (1u << 17)
#define GROW_START ((int64_t)1 << 20)
#define READ_CHUNK ((int64_t)1 << 30)

/* Reads up to len bytes; returns how many arrived (short at end of data or on error). */
static int64_t read_some(gzFile gz, uint8_t *buf, int64_t len) {
    int64_t got = 0;
    while (got < len) {
        int64_t want = len - got < READ_CHUNK ? len - got : READ_CHUNK;
        int r = gzread(gz, buf + got, (unsigned)want);
        if (r <= 0) break;
        got += r;
    }
    return got;
}

/* OCT_OK if the stream has no error, else the failure describing it. */
static oct_status stream_status(gzFile gz, const char *path) {
    int err = Z_OK;
    const char *msg = gzerror(gz, &err);
    if (err == Z_OK) return OCT_OK;
    if (err == Z_ERRNO) return oct_fail(OCT_EIO, "%s: read error: %s", path, strerror(errno));
    if (err == Z_BUF_ERROR) return oct_fail(OCT_EFORMAT, "%s: truncated gzip stream", path);
    if (err == Z_MEM_ERROR) return oct_fail(OCT_ENOMEM, "%s: out of memory in zlib", path);
    const char *sep = strstr(msg, ": "); /* after zlib's name for the file, "<fd:3>" */
    if (strncmp(msg, "<fd:", 4) == 0 && sep) msg = sep + 2;
    return oct_fail(OCT_EFORMAT, "%s: corrupt gzip stream (%s)", path, msg);
}

/* Reads exactly len bytes of the part named what. */
static oct_status read_exact(gzFile gz, const char *path, uint8_t *buf, int64_t len,
                             const char *what) {
    int64_t got = read_some(gz, buf, len);
    if (got == len) return OCT_OK;
    oct_status st = stream_status(gz, path);
    if (st != OCT_OK) return st;
    return oct_fail(OCT_EFORMAT, "%s: truncated %s: expected %lld bytes, found %lld", path, what,
                    (long long)len, (long long)got);
}

/* Reads the len-byte payload into a new buffer that grows as data arrives, so that a header
 * claiming a huge payload in a small file costs no more memory than the file holds. */
static oct_status read_payload(gzFile gz, const char *path, int64_t len, uint8_t **out) {
    int64_t cap = len < GROW_START ? len : GROW_START;
    uint8_t *buf = malloc((size_t)cap);
    int64_t got = 0;
    while (buf) {
        got += read_some(gz, buf + got, cap - got);
        if (got < cap || cap == len) break;
        cap = 2 * cap < len ? 2 * cap : len;
        uint8_t *grown = realloc(buf, (size_t)cap);
        if (!grown) free(buf);
        buf = grown;
    }
    if (!buf) return oct_fail(OCT_ENOMEM, "%s: cannot allocate %lld bytes", path, (long long)cap);
    if (got < len) {
        free(buf);
        oct_status st = stream_status(gz, path);
        if (st != OCT_OK) return st;
        return oct_fail(OCT_EFORMAT, "%s: truncated data: header says %lld bytes, found %lld", path,
                        (long long)len, (long long)got);
    }
    *out = buf;
    return OCT_OK;
}

/* Checks that nothing follows the payload; reading past the end makes zlib verify the gzip
 * trailer (CRC and length). */
static oct_status expect_end(gzFile gz, const char *path) {
    uint8_t extra;
    int r = gzread(gz, &extra, 1);
    if (r == 1)
        return oct_fail(OCT_EFORMAT,
                        "%s: unexpected data after the last item (the file is "
                        "larger than its header says)",
                        path);
    return stream_status(gz, path);
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads and validates the header of an unsigned-byte IDX file of ndim dimensions; *total is
 * the product of the dimensions. */
static oct_status read_header(gzFile gz, const char *path, int ndim, uint32_t *dims,
                              int64_t *total) {
    uint8_t h[4 * IDX_MAX_DIMS];
    oct_status st = read_exact(gz, path, h, 4, "header");
    if (st != OCT_OK) return st;
    uint32_t magic = be32(h);
    if (h[0] != 0 || h[1] != 0)
        return oct_fail(OCT_EFORMAT, "%s: not an IDX file (magic 0x%08x, expected 0x000008%02x)",
                        path, magic, ndim);
    if (h[2] != IDX_UBYTE)
        return oct_fail(OCT_EFORMAT,
                        "%s: unsupported IDX element type 0x%02x (magic 0x%08x; only unsigned "
                        "bytes, 0x08, are supported)",
                        path, h[2], magic);
    if (h[3] != ndim)
        return oct_fail(OCT_EFORMAT, "%s: %d-D IDX data (magic 0x%08x), expected %d-D", path, h[3],
                        magic, ndim);
    st = read_exact(gz, path, h, 4 * (int64_t)ndim, "header");
    if (st != OCT_OK) return st;
    char shape[48] = "";
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(h + 4 * i);
        size_t used = strlen(shape);
        snprintf(shape + used, sizeof shape - used, i ? " x %u" : "%u", dims[i]);
    }
    uint64_t product = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] == 0)
            return oct_fail(OCT_EFORMAT, "%s: dimension %d of %s is zero", path, i, shape);
        product *= dims[i]; /* stays below 2^31 * 2^32: no overflow */
        if (product > (uint64_t)OCT_IDX_MAX_BYTES)
            return oct_fail(OCT_EFORMAT, "%s: dimensions %s exceed the limit of %lld bytes", path,
                            shape, (long long)OCT_IDX_MAX_BYTES);
    }
    *total = (int64_t)product;
    return OCT_OK;
}

/* Loads a whole unsigned-byte IDX file of ndim dimensions into a new buffer. */
static oct_status load_idx(const char *path, int ndim, uint32_t *dims, uint8_t **data) {
    int fd;
    oct_status st = oct__open_regular(path, &fd, NULL);
    if (st != OCT_OK) return st;
    gzFile gz = gzdopen(fd, "rb"); /* owns fd from here */
    if (!gz) {
        close(fd);
        return oct_fail(OCT_ENOMEM, "%s: cannot open: out of memory", path);
    }
    gzbuffer(gz, GZ_BUFFER);
    int64_t total = 0;
    st = read_header(gz, path, ndim, dims, &total);
    if (st == OCT_OK) st = read_payload(gz, path, total, data);
    if (st == OCT_OK) {
        st = expect_end(gz, path);
        if (st != OCT_OK) {
            free(*data);
            *data = NULL;
        }
    }
    gzclose(gz);
    return st;
}

oct_status oct_image_set_load(oct_image_set *s, const char *images_path, const char *labels_path) {
    memset(s, 0, sizeof *s);
    uint32_t idims[3], ldims[1];
    uint8_t *images = NULL, *labels = NULL;
    oct_status st = load_idx(images_path, 3, idims, &images);
    if (st != OCT_OK) return st;
    ldims[0] = idims[0];
    if (labels_path) st = load_idx(labels_path, 1, ldims, &labels); /* else images alone */
    if (st == OCT_OK && ldims[0] != idims[0])
        st = oct_fail(OCT_EFORMAT, "%s: %u labels, but %s holds %u images", labels_path, ldims[0],
                      images_path, idims[0]);
    int max_label = 0;
    for (uint32_t i = 0; st == OCT_OK && labels && i < ldims[0]; i++)
        max_label = labels[i] > max_label ? labels[i] : max_label;
    if (st != OCT_OK) {
        free(images);
        free(labels);
        return st;
    }
    s->images = images;
    s->labels = labels;
    s->n = idims[0];
    s->rows = (int)idims[1];
    s->cols = (int)idims[2];
    s->n_classes = labels ? max_label + 1 : 0;
    s->mean = OCT_FASHION_MNIST_MEAN;
    s->std = OCT_FASHION_MNIST_STD;
    return OCT_OK;
}

/* Writes dir/name.gz into path if that file exists, else dir/name. */
static oct_status find_file(const char *dir, const char *name, char *path, size_t size) {
    int len = snprintf(path, size, "%s/%s.gz", dir, name);
    if (len < 0 || (size_t)len >= size)
        return oct_fail(OCT_EINVAL, "%s: directory name too long", dir);
    if (access(path, F_OK) == 0) return OCT_OK;
    snprintf(path, size, "%s/%s", dir, name);
    if (access(path, F_OK) == 0) return OCT_OK;
    return oct_fail(OCT_EIO, "%s/%s.gz: cannot open: %s (nor %s)", dir, name, strerror(errno),
                    name);
}

oct_status oct_image_set_load_dir(oct_image_set *s, const char *dir, bool train) {
    memset(s, 0, sizeof *s);
    char images[PATH_MAX], labels[PATH_MAX];
    oct_status st = find_file(dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte",
                              images, sizeof images);
    if (st == OCT_OK)
        st = find_file(dir, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte", labels,
                       sizeof labels);
    if (st != OCT_OK) return st;
    return oct_image_set_load(s, images, labels);
}

void oct_image_set_free(oct_image_set *s) {
    if (!s) return;
    free(s->images);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

void oct_image_set_stats(const oct_image_set *s, float *mean, float *std) {
    int64_t hist[256] = {0};
    int64_t count = s->n * s->rows * s->cols;
    for (int64_t i = 0; i < count; i++) hist[s->images[i]]++;
    double sum = 0.0;
    for (int p = 0; p < 256; p++) sum += (double)hist[p] * (p / 255.0);
    double mu = sum / (double)count, var = 0.0;
    for (int p = 0; p < 256; p++) var += (double)hist[p] * (p / 255.0 - mu) * (p / 255.0 - mu);
    *mean = (float)mu;
    *std = (float)sqrt(var / (double)count);
}

float oct_pixel_normalize(uint8_t p, float mean, float std) {
    return ((float)p / 255.0f - mean) / std;
}

/* The 256 normalized pixel values of s, so a batch costs one table lookup per pixel. */
static void pixel_table(const oct_image_set *s, float *table /* (256) */) {
    for (int p = 0; p < 256; p++) table[p] = oct_pixel_normalize((uint8_t)p, s->mean, s->std);
}

/* Converts image number row of s into x and its label into *y (if y is not NULL). */
static void convert_row(const oct_image_set *s, const float *table, int64_t row,
                        float *x, /* (rows*cols) */
                        int32_t *y) {
    OCT_ASSERT(row >= 0 && row < s->n);
    int64_t pixels = (int64_t)s->rows * s->cols;
    const uint8_t *src = s->images + row * pixels;
    for (int64_t j = 0; j < pixels; j++) x[j] = table[src[j]];
    if (y) *y = s->labels[row];
}

void oct_image_set_batch(const oct_image_set *s, const int32_t *idx, int n,
                         float *x, /* (n, rows*cols) */
                         int32_t *y /* (n) */) {
    float table[256];
    pixel_table(s, table);
    int64_t pixels = (int64_t)s->rows * s->cols;
    for (int i = 0; i < n; i++) convert_row(s, table, idx[i], x + i * pixels, y ? y + i : NULL);
}

void oct_image_set_batch_range(const oct_image_set *s, int64_t start, int n,
                               float *x, /* (n, rows*cols) */
                               int32_t *y /* (n) */) {
    float table[256];
    pixel_table(s, table);
    int64_t pixels = (int64_t)s->rows * s->cols;
    for (int i = 0; i < n; i++) convert_row(s, table, start + i, x + i * pixels, y ? y + i : NULL);
}
