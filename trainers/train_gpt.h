/* `octet train gpt`'s options, shared by its command line (train_gpt_opts.c: flags, checks,
 * defaults) and the training run (train_gpt.c). */
#ifndef OCTET_TRAIN_GPT_H
#define OCTET_TRAIN_GPT_H

#include <stdbool.h>

#include "gpt_checkpoint.h"
#include "octet/nn.h"

/* Muon's momentum rises from 0.85 to 0.95 over this many steps (as in Keller Jordan's
 * modded-nanogpt). */
#define MUON_MOMENTUM_WARMUP 300

typedef struct gpt_opts {
    const char *text, *schedule, *log, *save, *optim;
    const char *from; /* fine-tune this saved model; its architecture replaces the flags' */
    const char *checkpoint, *resume;
    int stop_after; /* 0: run to --steps */
    int argc;       /* the command line, stored in checkpoints (without --resume, --stop-after) */
    char **argv;
    int layers, heads, width, context, mlp, batch, steps, warmup, seed, threads;
    int eval_every, eval_batches;
    char options[GPT_RUN_OPTIONS]; /* the run's options after defaults, for checkpoints */
    float lr, min_lr, decay, wd, clip, beta2, dropout;
    float penalty; /* --confidence-penalty (0 for --from unless given) */
    bool tied, byte_level;
    const char *gelu;          /* "tanh" or "erf" */
    const char *positions;     /* "learned" or "learned+rope" */
    bool qat;                  /* --qat: the last qat_steps steps are quantization-aware */
    int qat_steps;             /* -1: half of --steps */
    int embed_bits;            /* --qat: 0 (float32 embeddings) or 2..8 */
    int weight_bits, act_bits; /* --qat: 2..8 */
    const char *layer_bits;    /* --qat: per-layer weight bits, "lm_head=8"; NULL: none */
    bool per_tensor_weights;   /* --qat: one weight scale per layer */
    int freeze_after;          /* observers freeze after this many QAT steps; -1: half of them */
    const char *weight_quant;  /* minmax | lsq | pow2 | kmeans (check_opts resolves NULL) */
    const char *act_quant;     /* ema | minmax | lsq */
    oct_qat_config qat_cfg;    /* --qat: the configuration of the flags above (check_opts) */
    const char *quant_flag;    /* the first quantizer flag given (NULL: none) */
    bool lr_given;
} gpt_opts;

/* The peak lr of a fine-tune (--from) for the narrowest weight bits; lsq_from_fp32: LSQ weights
 * started from an fp32 model (not a QAT or calibrated model's steps). */
float train_gpt_from_lr(int bits, bool lsq_from_fp32);
/* Prints "octet train gpt: FLAG: <last error>" and returns CLI_USAGE. */
int train_gpt_fail_flag(const char *flag);
/* Trains, validates, logs and saves as o says (o checked by the command line). */
int train_gpt_run(const gpt_opts *o);

#endif
