/* Shuffled minibatch indices, epoch after epoch.
 *
 * The order of epoch e is a Fisher-Yates shuffle of 0..n-1 driven by PCG32 stream e of the
 * batcher's seed. Each epoch is thus a pure function of (seed, epoch), so a checkpoint that
 * stores seed, epoch and pos resumes the exact batch sequence.
 */
#include "octet/data.h"

#include <stdlib.h>
#include <string.h>

/* Fills perm with the order of the current epoch. */
static void shuffle_epoch(oct_batcher *b) {
    for (int64_t i = 0; i < b->n; i++) b->perm[i] = (int32_t)i;
    oct_rng r;
    oct_rng_seed(&r, b->seed, (uint64_t)b->epoch);
    oct_rng_shuffle(&r, b->perm, b->n);
}

oct_status oct_batcher_init(oct_batcher *b, int64_t n, int batch, bool drop_last, oct_rng *rng) {
    memset(b, 0, sizeof *b);
    if (n < 1 || n > INT32_MAX)
        return oct_fail(OCT_EINVAL, "batcher: %lld examples, expected 1 to %d", (long long)n,
                        INT32_MAX);
    if (batch < 1) return oct_fail(OCT_EINVAL, "batcher: batch size %d, expected >= 1", batch);
    if (drop_last && n < batch)
        return oct_fail(OCT_EINVAL,
                        "batcher: batch size %d is larger than the %lld examples, and the "
                        "partial batch is dropped: an epoch would have no batch",
                        batch, (long long)n);
    b->perm = malloc((size_t)n * sizeof *b->perm);
    if (!b->perm)
        return oct_fail(OCT_ENOMEM, "batcher: cannot allocate %lld indices", (long long)n);
    b->n = n;
    b->batch = batch;
    b->drop_last = drop_last;
    uint64_t hi = oct_rng_u32(rng); /* two statements: the order of the draws is fixed */
    b->seed = hi << 32 | oct_rng_u32(rng);
    shuffle_epoch(b);
    return OCT_OK;
}

void oct_batcher_free(oct_batcher *b) {
    if (!b) return;
    free(b->perm);
    memset(b, 0, sizeof *b);
}

bool oct_batcher_next(oct_batcher *b, const int32_t **idx, int *count) {
    int64_t left = b->n - b->pos;
    if (left == 0 || (b->drop_last && left < b->batch)) {
        b->epoch++;
        b->pos = 0;
        shuffle_epoch(b);
        return false;
    }
    *count = left < b->batch ? (int)left : b->batch;
    *idx = b->perm + b->pos;
    b->pos += *count;
    return true;
}

int64_t oct_batcher_batches_per_epoch(const oct_batcher *b) {
    return b->n / b->batch + (!b->drop_last && b->n % b->batch != 0);
}

void oct_batcher_restore(oct_batcher *b, uint64_t seed, int64_t epoch, int64_t pos) {
    OCT_ASSERT(epoch >= 0 && pos >= 0 && pos <= b->n);
    b->seed = seed;
    b->epoch = epoch;
    shuffle_epoch(b);
    b->pos = pos;
}
