/* The `octet train mlp --qat` recipe: its flags, the QAT configuration built from them, and the
 * schedule of fp32 warm-up epochs followed by quantization-aware epochs. */
#ifndef OCTET_TRAINERS_QAT_MLP_H
#define OCTET_TRAINERS_QAT_MLP_H

#include "cli.h"
#include "mlp_model.h"

typedef struct qat_opts {
    bool on;          /* --qat */
    const char *from; /* --from: fine-tune this saved model (no fp32 warm-up) */
    int fp32_epochs;  /* --fp32-epochs; -1: half of --epochs */
    int freeze_after; /* --freeze-after steps; -1: one epoch of QAT steps; 0: never */
    int weight_bits, act_bits;
    const char *layer_bits;   /* per-layer weight bits, "fc0=8,fc2=8"; NULL: none */
    bool per_tensor_weights;  /* one weight scale per layer */
    const char *weight_quant; /* minmax | lsq | pow2 | kmeans; NULL: cli_default_weight_quant */
    const char *act_quant;    /* ema | minmax | lsq | pact, or one per quantization point */
    float obs_momentum;
    const char *quant_flag; /* the first quantizer flag given (not --qat, --from), or NULL */
} qat_opts;

/* The defaults and the flag table rows (QAT_N_FLAGS of them) for o. */
#define QAT_OPTS_DEFAULT                                                                           \
    { false, NULL, -1, -1, 8, 8, NULL, false, NULL, "ema", OCT_OBSERVER_MOMENTUM, NULL }
#define QAT_N_FLAGS 11
void qat_flags(qat_opts *o, cli_flag *rows /* (QAT_N_FLAGS) */);
/* After parsing: records in o which quantizer flag was given (seen from cli_parse_seen). */
void qat_flags_given(qat_opts *o, const cli_cmd *cmd, const bool *seen);

/* Checks the flags, loads --from when given (else m is left alone), and adds the quantizer state
 * to m (before the optimizer is created); a QAT or calibrated --from model keeps its own (its
 * quantizer flags are refused) and trains under QAT from the first epoch. per_epoch = training
 * steps per epoch. Sets *qat_start to the first QAT epoch. Returns CLI_OK, or prints one line and
 * returns CLI_USAGE/CLI_FAIL. */
int qat_setup(const qat_opts *o, mlp_model *m, int epochs, int64_t per_epoch, int threads,
              int *qat_start);

/* Called before epoch e: switches quantization on at qat_start, printing the fp32 accuracy the
 * warm-up reached (acc, in [0, 1]) when there was one. */
void qat_begin_epoch(mlp_model *m, int e, int qat_start, double acc);

#endif
