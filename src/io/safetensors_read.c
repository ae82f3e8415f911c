/* safetensors reader: reads a whole file into memory and validates it before handing anything
 * out: header length, JSON (jansson, duplicate keys rejected), every entry's dtype, shape and
 * offsets, offsets covering the data buffer exactly, string metadata and the octet.crc32
 * checksum. The data buffer is 64-byte aligned; tensors whose offset is not a multiple of their
 * dtype size get an aligned copy after it. Every error is one line naming the file. */
#include "io_internal.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../core/file.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; octet hands out pointers into it");

/* Headers above this size are corruption, not models. */
#define MAX_HEADER (100u << 20)

static size_t round8(size_t n) {
    return (n + 7) & ~(size_t)7;
}

static const char *shape_str(int ndim, const int *shape, char *buf, size_t n) {
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %d" : "%d", shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

/* Fails with "<file>: tensor "<name>": <message>". */
static oct_status bad_entry(const oct_st_file *f, const char *name, oct_status code,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static oct_status bad_entry(const oct_st_file *f, const char *name, oct_status code,
                            const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return oct_fail(code, "%s: tensor \"%s\": %s", f->path, name, msg);
}

/* v as an integer in [0, max], or -1 if it is not one. */
static int64_t get_uint(const json_t *v, int64_t max) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    return x >= 0 && x <= max ? x : -1;
}

static oct_status parse_entry(const oct_st_file *f, const char *name, const json_t *v,
                              oct_st_entry *e) {
    e->name = name;
    if (!json_is_object(v)) return bad_entry(f, name, OCT_EFORMAT, "entry is not an object");
    const json_t *dtype = json_object_get(v, "dtype");
    const json_t *shape = json_object_get(v, "shape");
    const json_t *offsets = json_object_get(v, "data_offsets");
    if (!json_is_string(dtype))
        return bad_entry(f, name, OCT_EFORMAT, "\"dtype\" is missing or not a string");
    if (!json_is_array(shape))
        return bad_entry(f, name, OCT_EFORMAT, "\"shape\" is missing or not an array");
    if (!json_is_array(offsets) || json_array_size(offsets) != 2)
        return bad_entry(f, name, OCT_EFORMAT, "\"data_offsets\" is missing or not [begin, end]");

    e->dtype = OCT_DT_COUNT;
    for (int dt = 0; dt < OCT_DT_COUNT; dt++)
        if (!strcmp(json_string_value(dtype), oct_dtype_name((oct_dtype)dt))) e->dtype = dt;
    if (e->dtype == OCT_DT_COUNT)
        return bad_entry(f, name, OCT_EUNSUPPORTED, "unsupported dtype \"%s\"",
                         json_string_value(dtype));

    if (json_array_size(shape) > OCT_ST_MAX_DIMS)
        return bad_entry(f, name, OCT_EUNSUPPORTED, "%zu dimensions, at most %d supported",
                         json_array_size(shape), OCT_ST_MAX_DIMS);
    e->ndim = (int)json_array_size(shape);
    for (int i = 0; i < e->ndim; i++) {
        int64_t d = get_uint(json_array_get(shape, (size_t)i), INT_MAX);
        if (d < 0)
            return bad_entry(f, name, OCT_EFORMAT, "dimension %d is not an integer in [0, %d]", i,
                             INT_MAX);
        e->shape[i] = (int)d;
    }
    if (!oct__st_nbytes(e->dtype, e->ndim, e->shape, &e->numel, &e->nbytes))
        return bad_entry(f, name, OCT_EFORMAT, "the size of the shape overflows");

    int64_t begin = get_uint(json_array_get(offsets, 0), INT64_MAX);
    int64_t end = get_uint(json_array_get(offsets, 1), INT64_MAX);
    if (begin < 0 || end < 0)
        return bad_entry(f, name, OCT_EFORMAT, "data offsets are not non-negative integers");
    if (end < begin)
        return bad_entry(f, name, OCT_EFORMAT, "data offsets end %lld < begin %lld", (long long)end,
                         (long long)begin);
    if ((uint64_t)end > f->data_size)
        return bad_entry(f, name, OCT_EFORMAT,
                         "data offsets end %lld beyond the %zu-byte data buffer", (long long)end,
                         f->data_size);
    char buf[128];
    if ((uint64_t)(end - begin) != e->nbytes)
        return bad_entry(f, name, OCT_EFORMAT, "%lld data bytes, but %s %s needs %zu",
                         (long long)(end - begin), oct_dtype_name(e->dtype),
                         shape_str(e->ndim, e->shape, buf, sizeof buf), e->nbytes);
    e->offset = (size_t)begin;
    return OCT_OK;
}

static oct_status parse_meta(oct_st_file *f, const json_t *meta) {
    if (!json_is_object(meta))
        return oct_fail(OCT_EFORMAT, "%s: \"%s\" is not an object", f->path, OCT__ST_META_KEY);
    f->meta = calloc(json_object_size(meta) + 1, sizeof *f->meta);
    OCT_ALLOC_CHECK(f->meta, (json_object_size(meta) + 1) * sizeof *f->meta);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        if (!json_is_string(value))
            return oct_fail(OCT_EFORMAT, "%s: metadata \"%s\" is not a string", f->path, key);
        f->meta[f->nmeta++] = (oct_st_kv){key, json_string_value(value)};
    }
    return OCT_OK;
}

static int by_offset(const void *pa, const void *pb) {
    const oct_st_entry *a = pa, *b = pb;
    if (a->offset != b->offset) return a->offset < b->offset ? -1 : 1;
    if (a->nbytes != b->nbytes) return a->nbytes < b->nbytes ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* Parses entries and metadata, then checks that the tensors tile the data buffer. */
static oct_status parse_header(oct_st_file *f) {
    f->entries = calloc(json_object_size(f->header) + 1, sizeof *f->entries);
    OCT_ALLOC_CHECK(f->entries, (json_object_size(f->header) + 1) * sizeof *f->entries);
    const char *key;
    json_t *value;
    json_object_foreach(f->header, key, value) {
        oct_status s = !strcmp(key, OCT__ST_META_KEY)
                           ? parse_meta(f, value)
                           : parse_entry(f, key, value, &f->entries[f->count++]);
        if (s) return s;
    }
    qsort(f->entries, (size_t)f->count, sizeof *f->entries, by_offset);
    size_t at = 0;
    for (int i = 0; i < f->count; i++) {
        const oct_st_entry *e = &f->entries[i];
        if (e->offset < at)
            return bad_entry(f, e->name, OCT_EFORMAT, "data overlaps the previous tensor");
        if (e->offset > at)
            return bad_entry(f, e->name, OCT_EFORMAT, "a %zu-byte hole in the data precedes it",
                             e->offset - at);
        at += e->nbytes;
    }
    if (at != f->data_size)
        return oct_fail(OCT_EFORMAT, "%s: %zu trailing bytes after the last tensor", f->path,
                        f->data_size - at);
    return OCT_OK;
}

static oct_status check_crc(const oct_st_file *f) {
    const char *want = oct_st_meta(f, OCT__ST_CRC_KEY);
    if (!want) return OCT_OK;
    if (strlen(want) != 8 || strspn(want, "0123456789abcdef") != 8)
        return oct_fail(OCT_EFORMAT, "%s: metadata %s \"%s\" is not 8 lowercase hex digits",
                        f->path, OCT__ST_CRC_KEY, want);
    unsigned long crc = crc32_z(0, f->buf, f->data_size);
    if (crc != strtoul(want, NULL, 16))
        return oct_fail(OCT_EFORMAT,
                        "%s: checksum mismatch: file is corrupt (data crc32 %08lx, header %s)",
                        f->path, crc, want);
    return OCT_OK;
}

/* Reads the data buffer at offset off, checks it and points the entries into it. */
static oct_status load_data(oct_st_file *f, int fd, int64_t off) {
    size_t copies = 0;
    for (int i = 0; i < f->count; i++) {
        const oct_st_entry *e = &f->entries[i];
        if (e->offset % oct_dtype_size(e->dtype)) copies += round8(e->nbytes);
    }
    size_t base = round8(f->data_size);
    f->buf = aligned_alloc(OCT_ALIGN, (base + copies + OCT_ALIGN) / OCT_ALIGN * OCT_ALIGN);
    if (!f->buf)
        return oct_fail(OCT_ENOMEM, "%s: cannot allocate %zu bytes for the data", f->path,
                        base + copies);
    oct_status s = oct__read_at(f->path, fd, f->buf, f->data_size, off);
    if (!s) s = check_crc(f);
    if (s) return s;
    char *copy = (char *)f->buf + base;
    for (int i = 0; i < f->count; i++) {
        oct_st_entry *e = &f->entries[i];
        e->data = (char *)f->buf + e->offset;
        if (e->offset % oct_dtype_size(e->dtype)) {
            memcpy(copy, e->data, e->nbytes);
            e->data = copy;
            copy += round8(e->nbytes);
        }
    }
    return OCT_OK;
}

/* Reads the regular file fd of size bytes: the header, then the data unless header_only. */
static oct_status load(oct_st_file *f, int fd, size_t size, bool header_only) {
    if (size < 8)
        return oct_fail(OCT_EFORMAT, "%s: %zu bytes, shorter than the 8-byte header length",
                        f->path, size);
    unsigned char n8[8];
    oct_status s = oct__read_at(f->path, fd, n8, 8, 0);
    if (s) return s;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | n8[i];
    if (n > MAX_HEADER)
        return oct_fail(OCT_EFORMAT, "%s: header length %llu is absurd (over 100 MB)", f->path,
                        (unsigned long long)n);
    if (n > size - 8)
        return oct_fail(OCT_EFORMAT, "%s: header length %llu exceeds the %zu-byte file", f->path,
                        (unsigned long long)n, size);
    f->header_size = (size_t)n;
    f->data_size = size - 8 - f->header_size;
    char *text = malloc(f->header_size + 1);
    OCT_ALLOC_CHECK(text, f->header_size + 1);
    s = oct__read_at(f->path, fd, text, f->header_size, 8);
    json_error_t err;
    if (!s) f->header = json_loadb(text, f->header_size, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (s) return s;
    if (!f->header)
        return oct_fail(OCT_EFORMAT, "%s: header is not valid JSON: %s (byte %d)", f->path,
                        err.text, err.position);
    if (!json_is_object(f->header))
        return oct_fail(OCT_EFORMAT, "%s: header is not a JSON object", f->path);
    s = parse_header(f);
    return s || header_only ? s : load_data(f, fd, (int64_t)(8 + f->header_size));
}

static oct_status open_file(oct_st_file *f, const char *path, bool header_only) {
    *f = (oct_st_file){0};
    f->path = strdup(path);
    OCT_ALLOC_CHECK(f->path, strlen(path) + 1);
    int fd;
    int64_t size;
    oct_status s = oct__open_regular(path, &fd, &size);
    if (s == OCT_OK) {
        s = load(f, fd, (size_t)size, header_only);
        close(fd);
    }
    if (s != OCT_OK) oct_st_close(f);
    return s;
}

oct_status oct_st_open(oct_st_file *f, const char *path) {
    return open_file(f, path, false);
}

oct_status oct_st_open_header(oct_st_file *f, const char *path) {
    return open_file(f, path, true);
}

void oct_st_close(oct_st_file *f) {
    if (!f) return;
    json_decref(f->header);
    free(f->entries);
    free(f->meta);
    free(f->buf);
    free(f->path);
    *f = (oct_st_file){0};
}

int64_t oct_st_total_numel(const oct_st_file *f) {
    int64_t n = 0;
    for (int i = 0; i < f->count; i++) n += f->entries[i].numel;
    return n;
}

const oct_st_entry *oct_st_find(const oct_st_file *f, const char *name) {
    for (int i = 0; i < f->count; i++)
        if (!strcmp(f->entries[i].name, name)) return &f->entries[i];
    return NULL;
}

oct_status oct_st_get(const oct_st_file *f, const char *name, oct_dtype dt, int ndim,
                      const int *shape, const void **data) {
    const oct_st_entry *e = oct_st_find(f, name);
    if (!e) return oct_fail(OCT_ENOTFOUND, "%s: no tensor \"%s\"", f->path, name);
    bool same = e->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = e->shape[i] == shape[i];
    if (e->dtype != dt || !same) {
        char want[128], got[128];
        return bad_entry(f, name, e->dtype != dt ? OCT_EFORMAT : OCT_ESHAPE,
                         "expected %s %s, found %s %s", oct_dtype_name(dt),
                         shape_str(ndim, shape, want, sizeof want), oct_dtype_name(e->dtype),
                         shape_str(e->ndim, e->shape, got, sizeof got));
    }
    *data = e->data;
    return OCT_OK;
}

oct_status oct_st_read_f32(const oct_st_file *f, oct_tensor *t) {
    OCT_ASSERT(t->name);
    const oct_st_entry *e = oct_st_find(f, t->name);
    bool is_float = e && (e->dtype == OCT_DT_F32 || e->dtype == OCT_DT_F16 ||
                          e->dtype == OCT_DT_BF16 || e->dtype == OCT_DT_F64);
    const void *data;
    oct_status s =
        oct_st_get(f, t->name, is_float ? e->dtype : OCT_DT_F32, t->ndim, t->shape, &data);
    if (!s && t->size) s = oct_st_to_f32(f, e, t->data);
    return s;
}

const char *oct_st_meta(const oct_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].value;
    return NULL;
}
