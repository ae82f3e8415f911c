/* safetensors: octet's one on-disk format (models, checkpoints, int8 exports).
 *
 * Layout (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of UTF-8 JSON {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..],
 * "data_offsets": [begin, end]}, ...}, then the raw little-endian data buffer, which the
 * tensors cover exactly (no holes, no overlaps); offsets count from the buffer start.
 *
 * The writer stores metadata "octet.crc32" (unless no_crc): the zlib crc32 of the data buffer as
 * 8 lowercase hex digits. The reader verifies it when present, so files from other writers (which
 * lack it) still load. Writes are atomic: a temporary file in the target's directory, fsync,
 * rename over the target, fsync of the directory.
 *
 *     oct_st_writer w;
 *     oct_st_writer_init(&w);
 *     oct_st_writer_add(&w, "layer0.weight", OCT_DT_F32, 2, shape, data);
 *     oct_st_writer_meta(&w, "step", "1200");
 *     oct_status s = oct_st_writer_write(&w, "model.safetensors");
 *     oct_st_writer_free(&w);
 *
 *     oct_st_file f;
 *     if (oct_st_open(&f, "model.safetensors") == OCT_OK) {
 *         oct_st_read_f32(&f, weight);          // by weight->name, shape checked
 *         const char *step = oct_st_meta(&f, "step");
 *     }
 *     oct_st_close(&f);
 */
#ifndef OCTET_IO_H
#define OCTET_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "octet/tensor.h"

/* Most dimensions a safetensors entry may have (octet tensors use at most OCT_MAX_DIMS). */
#define OCT_ST_MAX_DIMS 8

/* Element types octet reads and writes. Other safetensors dtypes (BOOL, U16, F8_E4M3, ...) are
 * rejected with OCT_EUNSUPPORTED. */
typedef enum {
    OCT_DT_F64,
    OCT_DT_F32,
    OCT_DT_F16,
    OCT_DT_BF16,
    OCT_DT_I64,
    OCT_DT_I32,
    OCT_DT_I8,
    OCT_DT_U8,
    OCT_DT_COUNT
} oct_dtype;

/* The safetensors name of a dtype ("F32") and its size in bytes. */
const char *oct_dtype_name(oct_dtype dt);
size_t oct_dtype_size(oct_dtype dt);
/* x as IEEE half-precision bits, rounded to nearest, ties to even: magnitudes from 65520 up
 * become infinities, below 2^-14 subnormals (or zero), NaN a quiet NaN of the same sign. */
void oct_f32_to_f16(const float *x /* (n) */, int64_t n, uint16_t *out /* (n) */);

/* ---- writer --------------------------------------------------------------------------------- */

typedef struct oct_st_writer {
    struct json_t *header; /* the JSON header being built */
    struct json_t *meta;   /* its "__metadata__" object */
    const void **data;     /* per tensor: data, borrowed until oct_st_writer_write */
    size_t *nbytes;        /* per tensor: size in bytes */
    int count;             /* tensors added */
    int cap;               /* capacity of data and nbytes */
    size_t total;          /* data buffer size so far */
    bool no_crc;           /* leave "octet.crc32" out (set after init): a file for other tools,
                              which may keep its metadata but write its data in another order */
} oct_st_writer;

void oct_st_writer_init(oct_st_writer *w);
/* Releases the writer; oct_st_writer_free(NULL) is a no-op. */
void oct_st_writer_free(oct_st_writer *w);

/* Appends a tensor of ndim (0..OCT_ST_MAX_DIMS) dimensions, shape[i] >= 0. data is borrowed
 * until oct_st_writer_write and may be NULL for an empty tensor. Tensors are written in the order
 * added, without padding: add wider dtypes first and the reader hands out pointers into its
 * buffer instead of aligned copies. Fails with OCT_EINVAL on a duplicate or reserved
 * ("__metadata__") name or a name that is not UTF-8. */
oct_status oct_st_writer_add(oct_st_writer *w, const char *name, oct_dtype dt, int ndim,
                             const int *shape, const void *data);
/* oct_st_writer_add for a float32 tensor under t->name (which must be set). */
oct_status oct_st_writer_add_tensor(oct_st_writer *w, const oct_tensor *t);
/* Sets metadata key to value (both copied; a second call replaces the value). Fails with
 * OCT_EINVAL on the reserved key "octet.crc32" or on a key or value that is not UTF-8. */
oct_status oct_st_writer_meta(oct_st_writer *w, const char *key, const char *value);
/* Writes the file (mode 0644) atomically, adding "octet.crc32" unless no_crc. On failure (OCT_EIO)
 * an existing file at path is left untouched and no temporary file remains. The writer can be
 * written again. */
oct_status oct_st_writer_write(oct_st_writer *w, const char *path);
/* The temporary file that an oct_st_writer_write in progress is writing ("<path>.tmp.XXXXXX"),
 * or NULL. A process killed by a signal during a write leaves it behind (the target stays
 * intact): a handler of SIGINT or SIGTERM may unlink() it before the process dies, as this call
 * is async-signal-safe. One write at a time is recorded (not one that runs meanwhile in another
 * thread, nor one to a path longer than PATH_MAX). */
const char *oct_st_pending_temp(void);

/* ---- reader --------------------------------------------------------------------------------- */

/* One tensor of an open file. All pointers are owned by the oct_st_file. */
typedef struct oct_st_entry {
    const char *name;
    oct_dtype dtype;
    int ndim; /* 0 for a scalar */
    int shape[OCT_ST_MAX_DIMS];
    int64_t numel;    /* product of shape */
    size_t nbytes;    /* numel * oct_dtype_size(dtype) */
    size_t offset;    /* start in the file's data buffer */
    const void *data; /* little-endian, aligned for dtype */
} oct_st_entry;

typedef struct oct_st_kv {
    const char *key;
    const char *value;
} oct_st_kv;

/* An open safetensors file, fully validated and held in memory (oct_st_open_header: its header
 * alone). Fields are read-only. */
typedef struct oct_st_file {
    char *path;
    int count;             /* tensors */
    oct_st_entry *entries; /* in the order of their data offsets */
    int nmeta;
    oct_st_kv *meta;       /* in file order */
    size_t header_size;    /* N, the JSON header length */
    size_t data_size;      /* bytes in the data buffer */
    struct json_t *header; /* owns the names, keys and values */
    void *buf;             /* the data buffer, then aligned copies of misaligned tensors */
} oct_st_file;

/* Reads and validates the whole file: sizes, JSON, dtypes, shapes, offsets covering the buffer
 * exactly, string metadata, and "octet.crc32" if present. Fails with OCT_EIO, OCT_EFORMAT,
 * OCT_EUNSUPPORTED (dtype or rank) or OCT_ENOMEM and a one-line message naming the file.
 * On failure f is left empty (nothing to release); on success release it with oct_st_close. */
oct_status oct_st_open(oct_st_file *f, const char *path);
/* oct_st_open without the data: reads and validates the header alone (the same checks but the
 * crc32), for a look at the metadata and the entries' names, dtypes and shapes; every entry's
 * data is NULL. Cheap on any size of file. */
oct_status oct_st_open_header(oct_st_file *f, const char *path);
/* Releases f; safe after a failed oct_st_open and on NULL. */
void oct_st_close(oct_st_file *f);

/* The entry called name, or NULL. */
const oct_st_entry *oct_st_find(const oct_st_file *f, const char *name);
/* The number of values in all of f's tensors: what a model described by f's metadata can hold
 * at most, checked before allocating it (a few bytes of metadata must not ask for gigabytes). */
int64_t oct_st_total_numel(const oct_st_file *f);
/* Looks up name and checks its dtype and shape: OCT_ENOTFOUND, or OCT_EFORMAT (dtype) or
 * OCT_ESHAPE (shape) with a message naming the file, the tensor, expected and found. */
oct_status oct_st_get(const oct_st_file *f, const char *name, oct_dtype dt, int ndim,
                      const int *shape, const void **data);
/* Copies the tensor called t->name (which must be set) into t->data, shape checked: F32 as is,
 * F16, BF16 and F64 converted (oct_st_to_f32); an integer dtype is OCT_EFORMAT. */
oct_status oct_st_read_f32(const oct_st_file *f, oct_tensor *t);
/* The metadata value for key, or NULL. */
const char *oct_st_meta(const oct_st_file *f, const char *key);
/* The values of a floating-point entry (F64, F32, F16, BF16) as float32 into out (e->numel):
 * F16 and BF16 exactly, F64 rounded to nearest. OCT_EUNSUPPORTED, naming the file and the
 * tensor, for an integer dtype. */
oct_status oct_st_to_f32(const oct_st_file *f, const oct_st_entry *e, float *out);

#endif
