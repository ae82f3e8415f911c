/* The GPT model as the trainer sees it: its arena, parameters, network and vocabulary, its
 * safetensors file (fp32 weights, the vocabulary as a U8 tensor, the architecture in metadata)
 * and its validation loss on a text corpus. */
#ifndef OCTET_TRAINERS_GPT_MODEL_H
#define OCTET_TRAINERS_GPT_MODEL_H

#include "cli.h"
#include "octet/data.h"
#include "octet/io.h"
#include "octet/nn.h"
#include "octet/qat.h"

/* Validation windows are drawn with this seed whatever --seed is, so runs (fp32, QAT, int8)
 * compare on the same text. */
#define GPT_EVAL_SEED 20240601u
/* Windows per validation batch, whatever the training batch is, so runs with different --batch
 * report losses on the same text. */
#define GPT_EVAL_WINDOWS 32
/* Validation batches unless --eval-batches says otherwise. */
#define GPT_EVAL_BATCHES 20
/* Names of a checkpoint's optimizer tensors start with this. */
#define GPT_OPTIM_PREFIX "optim/"

typedef struct gpt_model {
    oct_arena arena; /* parameters, gradients, optimizer state */
    oct_params params;
    oct_gpt gpt;
    oct_vocab vocab;  /* token id <-> byte; vocab.size == gpt.cfg.vocab */
    oct_qat_gpt *qat; /* quantizer state (malloc'd) after gpt_model_enable_qat, else NULL */
    bool qat_on;      /* forward passes run the QAT GPT (else fp32) */
    char *source;     /* the text it was trained on (CLI_META_SOURCE; malloc'd), NULL: unknown */
} gpt_model;

/* The most blocks a GPT file (octet's or an imported state dict) may have. */
#define GPT_MAX_LAYERS 1024

/* A freshly initialized model (GPT-2 init from seed). cfg->vocab must equal vocab->size. */
oct_status gpt_model_init(gpt_model *m, const oct_gpt_config *cfg, const oct_vocab *vocab,
                          uint64_t seed);
/* OCT_EFORMAT naming f's file unless f's tensors hold at least the parameters of cfg (but for
 * the biases, which a PyTorch state dict may leave out, when no_biases), checked before a model
 * described by a file's metadata or shapes is allocated. */
struct oct_st_file;
oct_status gpt_model_check_size(const struct oct_st_file *f, const oct_gpt_config *cfg,
                                bool no_biases);
/* Loads a model written by gpt_model_save. Errors (OCT_EFORMAT and the reader's) name the file
 * and the metadata key or tensor at fault: malformed metadata, a non-finite parameter, a QAT
 * step count not in [0, 2^53], quantizer state oct_qat_gpt_check refuses. On failure m is
 * zeroed. */
oct_status gpt_model_load(gpt_model *m, const char *path);
/* Writes the parameters, the "vocab" tensor and the metadata atomically (with a crc32). */
oct_status gpt_model_save(const gpt_model *m, const char *path);
/* Adds what gpt_model_save writes to w (path names the file in errors). Tensors added to w
 * before are written first: a checkpoint's optimizer state, under names starting with
 * GPT_OPTIM_PREFIX, which gpt_model_load skips. */
oct_status gpt_model_add(const gpt_model *m, oct_st_writer *w, const char *path);
/* Releases everything; gpt_model_free(NULL) is a no-op. */
void gpt_model_free(gpt_model *m);
/* Adds the QAT GPT state (before the optimizer is created; qat_on stays false). A QAT model
 * saves its quantizer tensors and metadata octet.qat (the config JSON) and octet.qat_steps;
 * loading it restores them with qat_on set. */
oct_status gpt_model_enable_qat(gpt_model *m, const oct_qat_config *cfg);
/* The embeddings of --embed-bits N for messages: "float32" (N = 0), "int8" or "N-bit" (in buf). */
const char *gpt_embed_desc(int embed_bits, char *buf, size_t n);
/* logits (B,T,V): the QAT GPT when qat_on, else the fp32 one. */
oct_tensor *gpt_model_forward(gpt_model *m, oct_graph *g, const int32_t *ids, int B, int T);

/* A batch of evaluation windows of T tokens into x and y (B,T): with stride 0, B random ones
 * from rng; else a full pass's next ones, starting every stride tokens of split
 * (oct_text_windows), from window *next, which advances; *rows gets how many (0 once a full pass
 * is done). */
oct_status gpt_eval_windows(const oct_text *text, oct_split split, oct_rng *rng, int stride,
                            int64_t *next, int B, int T, int32_t *x, int32_t *y, int *rows);
/* Begins bar for a pass over the whole split (n_batches 0) in windows every stride (0: T) tokens,
 * B at a time: one step per batch; nothing for n_batches random batches. */
void gpt_eval_progress_begin(cli_progress *bar, const oct_text *text, oct_split split,
                             int n_batches, int stride, int B, int T);
/* The summed cross-entropy (nats) of the positions a full pass with windows every stride tokens
 * scores, in rows windows (first, first + 1, ...; logits (rows, T, V), targets y (rows, T)):
 * all T positions of window 0, the last stride of every later one (those the window before did
 * not reach), so that every character is scored once, after at least T - stride others but at
 * the start of the split. *count grows by the number of positions. */
double gpt_scored_loss(const float *logits, const int32_t *y, int rows, int T, int V, int64_t first,
                       int stride, int64_t *count);
/* Mean cross-entropy in nats per token over n_batches batches of B windows of T tokens drawn
 * from split with an rng seeded by seed (the same windows on every call with the same
 * arguments), or with n_batches 0 over the whole split in windows every stride tokens (in [1,
 * T]; T or 0: consecutive; the last batch may be shorter), scored per gpt_scored_loss. Runs without
 * gradients or dropout. Fails (OCT_EINVAL) when the split is too short for T + 1 tokens. */
oct_status gpt_model_evaluate(gpt_model *m, oct_graph *g, const oct_text *text, oct_split split,
                              int n_batches, int stride, int B, int T, uint64_t seed, double *loss);

/* The prompt to generate from and its token ids: *text is prompt as given, or when NULL (no
 * --prompt) a newline, or the vocabulary's first character other than NUL when it has no
 * newline (held in buf); *len its length and *ids (malloc'd, *len + 1 slots) its ids under v.
 * A prompt longer than 1 MiB, a character outside v or no memory fails with one line (CLI_USAGE
 * or CLI_FAIL; *ids NULL). */
int gpt_prompt_ids(const char *prompt, const oct_vocab *v, char buf[2], const char **text,
                   int64_t *len, int32_t **ids);
/* Generated text on stdout as it comes: the prompt, then each new token's byte
 * (gpt_stream_token, an oct_token_fn), flushed at once on a terminal; gpt_stream_end ends the
 * line. The prompt is printed with the first token, so a generator that fails before it prints
 * nothing. rng is the sampling rng, for a sampler that streams (gpt_int8.c). */
typedef struct gpt_stream {
    const oct_vocab *vocab;
    oct_rng *rng;
    const char *prompt; /* not printed yet, else NULL */
    int64_t prompt_len;
    bool tty;
} gpt_stream;
void gpt_stream_init(gpt_stream *s, const oct_vocab *v, oct_rng *rng, const char *prompt,
                     int64_t len);
void gpt_stream_token(void *stream, int32_t id);
void gpt_stream_end(gpt_stream *s);
/* The path of --text: as given, except that the default corpus (OCT_DEFAULT_TEXT, relative to
 * the repository root) is also looked for above the executable's directory, so commands find it
 * from any directory. buf (n bytes) may hold the result. NULL, with the error set (how to
 * prepare the corpus), when the default corpus is missing. */
const char *gpt_text_path(const char *path, char *buf, size_t n);
/* What a model records of --text `text` (resolved by gpt_text_path, then cli_source_record): its
 * absolute path, or OCT_DEFAULT_TEXT when it is the repository's own corpus, which every clone
 * resolves; NULL when it records nothing. */
char *gpt_text_record(const char *text);

/* Reads the text file at text_path (gpt_text_path) encoded with v, the vocabulary of the model at
 * model_path (which must hold every character of the text), whose validation split must hold a
 * window of context + 1 characters. Errors name the text (and the first character missing and the
 * model); on failure t is zeroed. */
oct_status gpt_text_load(oct_text *t, const char *text_path, const oct_vocab *v, int context,
                         const char *model_path);

#endif
