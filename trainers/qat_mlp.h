/* The `octet train mlp --qat` recipe: its flags, the QAT configuration built from them, the
 * --from model, and the schedule of fp32 warm-up epochs followed by quantization-aware epochs. */
#ifndef OCTET_TRAINERS_QAT_MLP_H
#define OCTET_TRAINERS_QAT_MLP_H

#include "cli.h"
#include "mlp_model.h"

typedef struct qat_opts {
    bool on;          /* --qat */
    const char *from; /* --from: fine-tune this saved model (its layers, activation, quantizers) */
    int fp32_epochs;  /* --fp32-epochs; -1: half of --epochs (0 with --from) until qat_check */
    int freeze_after; /* --freeze-after steps; -1: one epoch of QAT steps; 0: never */
    int weight_bits, act_bits;
    const char *layer_bits;   /* per-layer weight bits, "fc0=8,fc2=8"; NULL: none */
    bool per_tensor_weights;  /* one weight scale per layer */
    const char *weight_quant; /* minmax | lsq | pow2 | kmeans; NULL: cli_default_weight_quant */
    const char *act_quant;    /* ema | minmax | lsq | pact, or one per quantization point */
    float obs_momentum;
    const char *quant_flag; /* the first quantizer flag given (not --qat, --from), or NULL */
    oct_qat_config cfg;     /* the flags' configuration (qat_check; freeze_after by qat_setup) */
} qat_opts;

/* The defaults and the flag table rows (QAT_N_FLAGS of them, --qat first) for o. */
#define QAT_OPTS_DEFAULT                                                                           \
    {                                                                                              \
        .fp32_epochs = -1, .freeze_after = -1, .weight_bits = 8, .act_bits = 8,                    \
        .act_quant = "ema", .obs_momentum = OCT_OBSERVER_MOMENTUM                                  \
    }
#define QAT_N_FLAGS 11
void qat_flags(qat_opts *o, cli_flag *rows /* (QAT_N_FLAGS) */);

/* After parsing (seen from cli_parse_seen), before any work: every flag of the rows but --qat
 * needs --qat; builds o->cfg from the flags and resolves o->fp32_epochs, which must leave a QAT
 * epoch of epochs. Returns CLI_OK, or prints one line and returns CLI_USAGE. */
int qat_check(qat_opts *o, const cli_cmd *cmd, const bool *seen, int epochs);

/* Loads --from into m. A QAT or calibrated model keeps its own quantizers, so the quantizer flags
 * are refused. Returns CLI_OK, or prints one line and returns CLI_USAGE/CLI_FAIL (m empty). */
int qat_load_from(const qat_opts *o, mlp_model *m);

/* Adds the quantizer state of o->cfg to m (before the optimizer is created), unless m is a QAT
 * --from model, which trains under QAT from the first epoch with its own. per_epoch = training
 * steps per epoch. Sets *qat_start to the first QAT epoch. Returns CLI_OK, or prints one line
 * and returns CLI_USAGE. */
int qat_setup(qat_opts *o, mlp_model *m, int64_t per_epoch, int threads, int *qat_start);

/* Called before epoch e: switches quantization on at qat_start, printing the fp32 accuracy the
 * warm-up reached (acc, in [0, 1]) when there was one. */
void qat_begin_epoch(mlp_model *m, int e, int qat_start, double acc);

#endif
