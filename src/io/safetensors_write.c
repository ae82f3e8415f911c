/* safetensors writer: builds the JSON header with jansson as tensors are added (offsets are
 * cumulative, in the order added), then writes header and borrowed data atomically: temporary
 * file next to the target, fflush + fsync, rename, fsync of the directory. The temporary file's
 * name is recorded while it exists, for a signal handler to remove (oct_st_pending_temp). */
#include "io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; octet writes host memory as is");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "a signal handler reads the pending temporary file");

#define TMP_SUFFIX ".tmp.XXXXXX"

/* The temporary file of the write in progress, for a signal handler to remove
 * (oct_st_pending_temp). One write at a time holds it (a write in another thread meanwhile, or
 * to a path too long for it, uses a buffer of its own and is not recorded); pending_state is 0
 * (free), 1 (claimed) or 2 (pending holds the name: mkstemp's template, then the file). */
static char pending[PATH_MAX + sizeof TMP_SUFFIX];
static atomic_int pending_state;

const char *oct_st_pending_temp(void) {
    return atomic_load(&pending_state) == 2 ? pending : NULL;
}

void oct_st_writer_init(oct_st_writer *w) {
    *w = (oct_st_writer){0};
    w->header = json_object();
    w->meta = json_object();
    OCT_ASSERT(w->header && w->meta);
    OCT_ASSERT(json_object_set(w->header, OCT__ST_META_KEY, w->meta) == 0);
}

void oct_st_writer_free(oct_st_writer *w) {
    if (!w) return;
    json_decref(w->meta);
    json_decref(w->header);
    free(w->data);
    free(w->nbytes);
    *w = (oct_st_writer){0};
}

oct_status oct_st_writer_add(oct_st_writer *w, const char *name, oct_dtype dt, int ndim,
                             const int *shape, const void *data) {
    OCT_ASSERT(name && ndim >= 0 && ndim <= OCT_ST_MAX_DIMS);
    int64_t numel;
    size_t nbytes;
    OCT_ASSERT(oct__st_nbytes(dt, ndim, shape, &numel, &nbytes));
    OCT_ASSERT(data || nbytes == 0);
    if (!strcmp(name, OCT__ST_META_KEY))
        return oct_fail(OCT_EINVAL, "safetensors writer: tensor name \"%s\" is reserved", name);
    if (json_object_get(w->header, name))
        return oct_fail(OCT_EINVAL, "safetensors writer: tensor name \"%s\" is already used", name);
    json_t *dims = json_array();
    for (int i = 0; i < ndim; i++) json_array_append_new(dims, json_integer(shape[i]));
    json_t *entry =
        json_pack("{s:s, s:o, s:[I, I]}", "dtype", oct_dtype_name(dt), "shape", dims,
                  "data_offsets", (json_int_t)w->total, (json_int_t)(w->total + nbytes));
    OCT_ASSERT(entry);
    if (json_object_set_new(w->header, name, entry))
        return oct_fail(OCT_EINVAL, "safetensors writer: tensor name is not valid UTF-8");
    if (w->count == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->data = realloc(w->data, (size_t)w->cap * sizeof *w->data);
        w->nbytes = realloc(w->nbytes, (size_t)w->cap * sizeof *w->nbytes);
        OCT_ALLOC_CHECK(w->data && w->nbytes, (size_t)w->cap * sizeof *w->data);
    }
    w->data[w->count] = data;
    w->nbytes[w->count] = nbytes;
    w->count++;
    w->total += nbytes;
    return OCT_OK;
}

oct_status oct_st_writer_add_tensor(oct_st_writer *w, const oct_tensor *t) {
    OCT_ASSERT(t->name);
    return oct_st_writer_add(w, t->name, OCT_DT_F32, t->ndim, t->shape, t->data);
}

oct_status oct_st_writer_meta(oct_st_writer *w, const char *key, const char *value) {
    if (!strcmp(key, OCT__ST_CRC_KEY))
        return oct_fail(OCT_EINVAL, "safetensors writer: metadata key \"%s\" is reserved", key);
    json_t *v = json_string(value);
    if (!v || json_object_set_new(w->meta, key, v))
        return oct_fail(OCT_EINVAL, "safetensors writer: metadata \"%s\" is not valid UTF-8", key);
    return OCT_OK;
}

/* The header text padded with spaces so that 8 + length is a multiple of 8 (aligned data). */
static char *header_text(oct_st_writer *w, size_t *len) {
    if (!w->no_crc) {
        uLong crc = crc32_z(0, Z_NULL, 0);
        for (int i = 0; i < w->count; i++) /* skip empty tensors: crc32_z(crc, NULL, 0) is 0 */
            if (w->nbytes[i]) crc = crc32_z(crc, w->data[i], w->nbytes[i]);
        char hex[9];
        snprintf(hex, sizeof hex, "%08lx", (unsigned long)crc);
        OCT_ASSERT(json_object_set_new(w->meta, OCT__ST_CRC_KEY, json_string(hex)) == 0);
    }
    char *json = json_dumps(w->header, JSON_COMPACT);
    OCT_ASSERT(json);
    size_t n = strlen(json), padded = (n + 7) & ~(size_t)7;
    char *text = malloc(padded);
    OCT_ALLOC_CHECK(text, padded);
    memcpy(text, json, n);
    memset(text + n, ' ', padded - n);
    free(json);
    *len = padded;
    return text;
}

/* Writes the whole file to fd (which it closes); false with errno set on failure. */
static bool write_file(oct_st_writer *w, int fd, const char *text, size_t len) {
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        close(fd);
        return false;
    }
    unsigned char n8[8];
    for (int i = 0; i < 8; i++) n8[i] = (unsigned char)((uint64_t)len >> (8 * i));
    bool ok = fchmod(fd, 0644) == 0 && fwrite(n8, 1, 8, fp) == 8 && fwrite(text, 1, len, fp) == len;
    for (int i = 0; ok && i < w->count; i++)
        ok = !w->nbytes[i] || fwrite(w->data[i], 1, w->nbytes[i], fp) == w->nbytes[i];
    ok = ok && fflush(fp) == 0 && fsync(fd) == 0;
    int err = errno;
    if (fclose(fp) != 0 && ok) return false;
    errno = err;
    return ok;
}

/* fsync of the directory holding path, so that the rename itself is durable. */
static bool sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    OCT_ALLOC_CHECK(dir, strlen(path) + 2);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    free(dir);
    if (fd < 0) return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

oct_status oct_st_writer_write(oct_st_writer *w, const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) /* a device, FIFO, directory: not ours */
        return oct_fail(OCT_EIO, "%s: exists and is not a regular file", path);
    size_t len;
    char *text = header_text(w, &len);
    size_t plen = strlen(path);
    int free_state = 0;
    bool recorded = plen + sizeof TMP_SUFFIX <= sizeof pending &&
                    atomic_compare_exchange_strong(&pending_state, &free_state, 1);
    char *tmp = recorded ? pending : malloc(plen + sizeof TMP_SUFFIX);
    OCT_ALLOC_CHECK(tmp, plen + sizeof TMP_SUFFIX);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, TMP_SUFFIX, sizeof TMP_SUFFIX);
    if (recorded) atomic_store(&pending_state, 2); /* before the file exists: none escapes */
    oct_status s = OCT_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        s = oct_fail(OCT_EIO, "%s: cannot create a temporary file: %s", path, strerror(errno));
    } else if (!write_file(w, fd, text, len) || rename(tmp, path) != 0) {
        s = oct_fail(OCT_EIO, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
    } else if (!sync_dir(path)) {
        s = oct_fail(OCT_EIO, "%s: written, but syncing its directory failed: %s", path,
                     strerror(errno));
    }
    if (recorded)
        atomic_store(&pending_state, 0);
    else
        free(tmp);
    free(text);
    return s;
}
