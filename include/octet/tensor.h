/* Arenas, tensors and the seeded random number generator.
 *
 * Every tensor lives in exactly one arena; there is no per-tensor free. A model arena holds
 * parameters, gradients, optimizer and quantization state for the life of the model; a step
 * arena (owned by an oct_graph) holds activations and is rewound every step. Tensors are float32,
 * row-major, contiguous, up to 4-D.
 */
#ifndef OCTET_TENSOR_H
#define OCTET_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "octet/status.h"

#define OCT_MAX_DIMS 4
#define OCT_ALIGN 64

/* ---- arena ---------------------------------------------------------------------------------- */

typedef struct oct_arena_block oct_arena_block;

typedef struct oct_arena {
    oct_arena_block *head; /* first block */
    oct_arena_block *cur;  /* block currently being filled */
    size_t block_size;     /* default size of a new block */
    size_t in_use;         /* bytes handed out since init or the last rewind */
    size_t peak;           /* high-water mark of in_use */
    size_t reserved;       /* bytes held in blocks */
} oct_arena;

/* A position in an arena to rewind to. */
typedef struct oct_arena_mark {
    oct_arena_block *block;
    size_t used;
    size_t in_use;
} oct_arena_mark;

/* Initializes an empty arena whose blocks are at least block_size bytes. Allocates nothing. */
void oct_arena_init(oct_arena *a, size_t block_size);
/* Releases every block. oct_arena_free(NULL) is a no-op. */
void oct_arena_free(oct_arena *a);
/* Returns bytes aligned to OCT_ALIGN; never NULL (running out of memory calls the handler of
 * oct_set_oom_handler, then aborts). */
void *oct_arena_alloc(oct_arena *a, size_t bytes);
/* Same as oct_arena_alloc, zero-filled. */
void *oct_arena_calloc(oct_arena *a, size_t bytes);
oct_arena_mark oct_arena_save(const oct_arena *a);
/* Forgets everything allocated after mark; keeps the blocks for reuse. */
void oct_arena_rewind(oct_arena *a, oct_arena_mark mark);
/* Forgets everything; keeps the blocks for reuse. */
void oct_arena_reset(oct_arena *a);

/* ---- tensor --------------------------------------------------------------------------------- */

typedef struct oct_tensor {
    float *data;  /* size floats */
    float *grad;  /* gradient, same shape; NULL until needed */
    int64_t size; /* number of elements */
    int ndim;     /* 1..4 */
    int shape[OCT_MAX_DIMS];
    bool requires_grad; /* a parameter, or computed from one on the tape */
    const char *name;   /* optional, borrowed; used in error messages and files */
    int param_id;       /* 1 + index in the model's oct_params list (set by oct_params_add);
                           0 for tensors that are not parameters */
} oct_tensor;

/* A new uninitialized tensor of the given shape in arena a. */
oct_tensor *oct_tensor_new(oct_arena *a, int ndim, const int *shape);
/* A new zero-filled tensor. */
oct_tensor *oct_tensor_zeros(oct_arena *a, int ndim, const int *shape);
/* A new zero-filled trainable tensor with a zeroed gradient, both in arena a. */
oct_tensor *oct_tensor_param(oct_arena *a, const char *name, int ndim, const int *shape);
/* Shorthands for 1-D and 2-D shapes. */
oct_tensor *oct_tensor_new2(oct_arena *a, int rows, int cols);
/* A view with another shape on the same data and grad (sizes must match). */
oct_tensor *oct_tensor_view(oct_arena *a, const oct_tensor *t, int ndim, const int *shape);
/* Size of the last dimension and the product of the others. */
int oct_tensor_cols(const oct_tensor *t);
int64_t oct_tensor_rows(const oct_tensor *t);
bool oct_tensor_same_shape(const oct_tensor *a, const oct_tensor *b);
/* Writes "[2, 3, 4]" into buf. */
const char *oct_tensor_shape_str(const oct_tensor *t, char *buf, size_t n);

/* ---- parameter list ------------------------------------------------------------------------- */

/* The trainable tensors of a model, in creation order. The items array is malloc'd and owned by
 * the list; the tensors are borrowed (they live in the model arena). */
typedef struct oct_params {
    oct_tensor **items;
    int n, cap;
} oct_params;

/* Initializes an empty list. Allocates nothing. */
void oct_params_init(oct_params *p);
/* Frees the items array (not the tensors). oct_params_free(NULL) is a no-op. */
void oct_params_free(oct_params *p);
/* Appends t. t must be a parameter (requires_grad, grad allocated) with a name that no tensor
 * in the list has yet; anything else trips OCT_ASSERT. */
void oct_params_add(oct_params *p, oct_tensor *t);
/* The tensor named name, or NULL. */
oct_tensor *oct_params_find(const oct_params *p, const char *name);
/* Sets every gradient to zero. */
void oct_params_zero_grad(const oct_params *p);
/* Number of scalars in all tensors of the list. */
int64_t oct_params_count(const oct_params *p);
/* A printf-formatted string stored in arena a: oct_arena_printf(a, "%s.weight", "fc0"). Used to
 * name parameters and state tensors, whose names must outlive the caller's buffers. */
const char *oct_arena_printf(oct_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- random numbers ------------------------------------------------------------------------- */

/* PCG32 (O'Neill): small, fast and reproducible: same seed, same bits on every machine. */
typedef struct oct_rng {
    uint64_t state;
    uint64_t inc;
} oct_rng;

void oct_rng_seed(oct_rng *r, uint64_t seed, uint64_t stream);
uint32_t oct_rng_u32(oct_rng *r);
/* Uniform in [0, n) without modulo bias. */
uint32_t oct_rng_below(oct_rng *r, uint32_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float oct_rng_uniform(oct_rng *r);
/* Standard normal (Box-Muller, float64 inside). */
float oct_rng_normal(oct_rng *r);
/* Fills t with N(0, std^2) or U(-bound, bound). */
void oct_rng_fill_normal(oct_rng *r, oct_tensor *t, float std);
void oct_rng_fill_uniform(oct_rng *r, oct_tensor *t, float bound);
/* Fisher-Yates shuffle of idx[0..n). */
void oct_rng_shuffle(oct_rng *r, int32_t *idx, int64_t n);

#endif
