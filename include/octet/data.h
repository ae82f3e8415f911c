/* Datasets: IDX image sets (MNIST / Fashion-MNIST), shuffled minibatches, and text corpora.
 *
 * Images. oct_image_set_load reads a pair of IDX files (images: magic 0x00000803, unsigned
 * bytes, 3-D (n, rows, cols); labels: magic 0x00000801, unsigned bytes, 1-D (n)), gzip'ed or
 * not. Every size is checked against the bytes actually present: a truncated or oversized file,
 * a corrupt gzip stream, a wrong magic, absurd dimensions and mismatched counts all fail with
 * OCT_EFORMAT (OCT_EIO when the file cannot be opened or read) and a message that starts with
 * the file's path. Labels are class numbers 0..255; the set has 1 + the largest label classes
 * (10 for Fashion-MNIST and MNIST, 26 or 47 for EMNIST's letters or balanced sets). Pixels stay
 * uint8 in memory; a batch is converted to float when it is used:
 *
 *     x = (p / 255 - mean) / std        (oct_pixel_normalize, the one definition)
 *
 * with the set's mean/std fields, which the loader sets to the Fashion-MNIST training-set
 * statistics. Training, evaluation and export must use the same pair: keep the defaults, or
 * compute oct_image_set_stats on the training set and copy the result into every set (what
 * `octet train mlp` does, rounded to 4 decimals: Fashion-MNIST's 0.2860/0.3530 below, MNIST's
 * well-known 0.1307/0.3081).
 *
 *     oct_image_set train;
 *     if (oct_image_set_load_dir(&train, OCT_FASHION_MNIST_DIR, true) != OCT_OK)
 *         fprintf(stderr, "%s\n", oct_last_error());
 *     oct_batcher b;
 *     oct_batcher_init(&b, train.n, 64, true, &rng);
 *     const int32_t *idx; int count;
 *     while (oct_batcher_next(&b, &idx, &count))
 *         oct_image_set_batch(&train, idx, count, x, y);     -- one epoch
 *
 * Text. oct_text_load reads a whole file, builds a character vocabulary from the bytes present
 * (or takes all 256 bytes in byte-level mode), encodes it to token ids, and splits it: the
 * first 90% of the tokens train, the last 10% validate. oct_text_batch samples random
 * windows: targets are the inputs shifted by one token.
 */
#ifndef OCTET_DATA_H
#define OCTET_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "octet/status.h"
#include "octet/tensor.h"

/* ---- IDX image sets ------------------------------------------------------------------------- */

/* Where the Debian package dataset-fashion-mnist installs the four .gz files. */
#define OCT_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
/* Mean and standard deviation of the Fashion-MNIST training pixels on the [0, 1] scale
 * (oct_image_set_stats on the 60000 training images gives 0.28604, 0.35302). */
#define OCT_FASHION_MNIST_MEAN 0.2860f
#define OCT_FASHION_MNIST_STD 0.3530f
/* The loader refuses a file whose payload (product of its dimensions) exceeds this many bytes,
 * before allocating anything; it also keeps every count and index within int32. */
#define OCT_IDX_MAX_BYTES ((int64_t)INT32_MAX)

typedef struct oct_image_set {
    uint8_t *images; /* (n, rows*cols) pixels, row-major */
    uint8_t *labels; /* (n) in [0, n_classes) */
    int64_t n;       /* number of images */
    int rows, cols;  /* image height and width */
    int n_classes;   /* 1 + the largest label */
    float mean, std; /* normalization used by the batch functions; see oct_pixel_normalize */
} oct_image_set;

/* Loads images and labels from two IDX files (gzip'ed or raw); labels_path NULL loads the images
 * alone (labels NULL, n_classes 0: for prediction, not for the batch functions' labels). On
 * success s owns the data and mean/std are OCT_FASHION_MNIST_MEAN/STD; on failure s is zeroed and
 * the message names the offending file. Errors: OCT_EIO (open/read), OCT_EFORMAT (contents),
 * OCT_ENOMEM. */
oct_status oct_image_set_load(oct_image_set *s, const char *images_path, const char *labels_path);

/* Loads the training (train-images-idx3-ubyte, train-labels-idx1-ubyte) or test (t10k-...)
 * split from dir, preferring the ".gz" name and falling back to the uncompressed one. */
oct_status oct_image_set_load_dir(oct_image_set *s, const char *dir, bool train);

/* Releases the data and zeroes s. oct_image_set_free(NULL) is a no-op. */
void oct_image_set_free(oct_image_set *s);

/* Mean and standard deviation (population) of all pixels of s on the [0, 1] scale. */
void oct_image_set_stats(const oct_image_set *s, float *mean, float *std);

/* The normalization of one pixel: (p / 255 - mean) / std, in float32. Every consumer (batches,
 * evaluation, the exported model's input quantization) goes through this function. */
float oct_pixel_normalize(uint8_t p, float mean, float std);

/* Gathers the images idx[0..n) into x as normalized floats and their labels into y
 * (y may be NULL). Every idx[i] must lie in [0, s->n). */
void oct_image_set_batch(const oct_image_set *s, const int32_t *idx, int n,
                         float *x, /* (n, rows*cols) */
                         int32_t *y /* (n) */);

/* Same for the consecutive images [start, start + n), for evaluation in file order. */
void oct_image_set_batch_range(const oct_image_set *s, int64_t start, int n,
                               float *x, /* (n, rows*cols) */
                               int32_t *y /* (n) */);

/* ---- minibatches ---------------------------------------------------------------------------- */

/* Shuffled minibatches of the indices [0, n), epoch after epoch. The order of epoch e is a
 * Fisher-Yates shuffle driven by PCG32 stream e of seed, so (seed, epoch, pos) is the whole
 * state: save those three fields in a checkpoint and oct_batcher_restore them. */
typedef struct oct_batcher {
    int32_t *perm;  /* (n) the current epoch's order */
    int64_t n;      /* number of indices */
    int batch;      /* batch size */
    bool drop_last; /* skip the last batch of an epoch when it is smaller than batch */
    uint64_t seed;  /* drawn from the caller's rng at init */
    int64_t epoch;  /* current epoch, from 0 */
    int64_t pos;    /* next position in perm */
} oct_batcher;

/* Draws the seed from rng (two u32 draws) and shuffles epoch 0. Fails with OCT_EINVAL if
 * n < 1, n > INT32_MAX, batch < 1, or drop_last with n < batch (an epoch without batches);
 * OCT_ENOMEM if the permutation cannot be allocated. */
oct_status oct_batcher_init(oct_batcher *b, int64_t n, int batch, bool drop_last, oct_rng *rng);

/* Releases the permutation. oct_batcher_free(NULL) is a no-op. */
void oct_batcher_free(oct_batcher *b);

/* Sets *idx (borrowed, valid until the next call) and *count to the next batch of the current
 * epoch and returns true. When the epoch is exhausted returns false without a batch and moves
 * to the next epoch, so `while (oct_batcher_next(...))` runs one epoch and a step-based loop
 * retries once after false. The last batch has count < batch only if drop_last is false. */
bool oct_batcher_next(oct_batcher *b, const int32_t **idx, int *count);

/* Batches per epoch: n / batch, plus one for a kept partial batch. */
int64_t oct_batcher_batches_per_epoch(const oct_batcher *b);

/* Moves to position pos (0 <= pos <= n) of the given epoch of the order defined by seed, as
 * saved from a batcher of the same n and batch. */
void oct_batcher_restore(oct_batcher *b, uint64_t seed, int64_t epoch, int64_t pos);

/* ---- text corpora --------------------------------------------------------------------------- */

/* Default corpus written by datasets/prepare_text.sh (the King James Bible, plain ASCII),
 * relative to the repository root. */
#define OCT_DEFAULT_TEXT "data/kjv.txt"
/* The loader refuses a larger file. */
#define OCT_TEXT_MAX_BYTES ((int64_t)1 << 30)

/* A byte-to-token mapping. bytes[0..size) are the byte values in increasing order; token id i
 * stands for bytes[i]. To save it with a model store bytes[0..size) (for example as a U8
 * tensor: it may contain NUL and non-UTF-8 bytes) and rebuild it with oct_vocab_from_bytes. */
typedef struct oct_vocab {
    int size;           /* 1..256 */
    uint8_t bytes[256]; /* (size) token id -> byte */
    int16_t id[256];    /* byte -> token id, -1 if the byte is not in the vocabulary */
} oct_vocab;

/* The byte-level vocabulary: all 256 bytes, token id = byte value. */
void oct_vocab_bytes(oct_vocab *v);

/* Rebuilds a vocabulary from its byte list. OCT_EINVAL unless 1 <= n <= 256 and the bytes are
 * strictly increasing. */
oct_status oct_vocab_from_bytes(oct_vocab *v, const uint8_t *bytes, int n);

/* Encodes s[0..n) into ids[0..n). A byte outside the vocabulary fails with OCT_EINVAL and a
 * message naming the character and its offset. */
oct_status oct_vocab_encode(const oct_vocab *v, const char *s, int64_t n, int32_t *ids /* (n) */);

/* Decodes ids[0..n) into out[0..n) and writes a terminating NUL at out[n] (out holds n + 1
 * bytes). Every id must lie in [0, v->size). */
void oct_vocab_decode(const oct_vocab *v, const int32_t *ids /* (n) */, int64_t n, char *out);

typedef enum { OCT_SPLIT_TRAIN, OCT_SPLIT_VAL } oct_split;

typedef struct oct_text {
    uint8_t *tokens; /* (n) token ids of the whole file */
    int64_t n;       /* number of tokens (= bytes of the file) */
    int64_t n_train; /* tokens[0..n_train) train, tokens[n_train..n) validate; n_train = 9n/10 */
    oct_vocab vocab;
} oct_text;

/* Reads the whole file at path and encodes it with a vocabulary of the bytes present, or of all
 * 256 bytes if byte_level. Errors: OCT_EIO (open/read), OCT_EFORMAT (empty or larger than
 * OCT_TEXT_MAX_BYTES), OCT_ENOMEM; on failure t is zeroed. */
oct_status oct_text_load(oct_text *t, const char *path, bool byte_level);

/* Re-encodes t with the vocabulary v (a model's), which must hold every character of the file:
 * otherwise OCT_EINVAL names the first character missing and its offset, and t is unchanged. */
oct_status oct_text_recode(oct_text *t, const oct_vocab *v);

/* Releases the tokens and zeroes t. oct_text_free(NULL) is a no-op. */
void oct_text_free(oct_text *t);

/* Number of tokens in a split. */
int64_t oct_text_split_size(const oct_text *t, oct_split split);

/* Fills B windows of T tokens drawn uniformly from the split: x[b, :] = tokens[s .. s+T),
 * y[b, :] = tokens[s+1 .. s+T+1), each window entirely inside the split. Fails with OCT_EINVAL
 * if the split holds fewer than T + 1 tokens. */
oct_status oct_text_batch(const oct_text *t, oct_split split, oct_rng *rng, int B, int T,
                          int32_t *x, /* (B,T) */
                          int32_t *y /* (B,T) */);
/* The number of windows of T inputs (plus the one target after them) that start every stride
 * tokens of split from its start (window k at token k stride) and fit in it: with stride T the
 * consecutive, non-overlapping windows that tile the split, (tokens - 1) / T of them. */
int64_t oct_text_window_count(const oct_text *t, oct_split split, int T, int stride);
/* Windows first, first + 1, ... of those into the rows of x and y, at most B of them; *n gets
 * how many (0 past the end). OCT_EINVAL as oct_text_batch when the split is shorter than T + 1. */
oct_status oct_text_windows(const oct_text *t, oct_split split, int64_t first, int stride, int B,
                            int T, int32_t *x, /* (B,T) */
                            int32_t *y /* (B,T) */, int *n);

#endif
