/* `octet train mlp --qat`: fp32 warm-up epochs, then quantization-aware epochs in which every
 * linear layer runs the shared integer layer (oct_qat_linear_forward) and observers freeze after
 * --freeze-after steps; or, with --from, QAT fine-tuning of a saved fp32 model (or of a QAT or
 * calibrated one, with its own quantizers). The trained
 * model saves with its quantizer state and config (see mlp_model.c) for `octet export`. */
#include "qat_mlp.h"

#include <stdio.h>
#include <string.h>

void qat_flags(qat_opts *o, cli_flag *rows) {
    const cli_flag f[QAT_N_FLAGS] = {
        {"--qat", CLI_BOOL, &o->on,
         "quantization-aware training (fp32 warm-up, then simulated int8)", 0, 0},
        {"--fp32-epochs", CLI_INT, &o->fp32_epochs,
         "--qat: fp32 warm-up epochs before QAT (-1: half of --epochs)", -1, 100000},
        {"--freeze-after", CLI_INT, &o->freeze_after,
         "--qat: freeze observers after N QAT steps (-1: one epoch, 0: never)", -1, 1e9},
        {"--from", CLI_STR, &o->from, "--qat: fine-tune this saved model (no fp32 warm-up)", 0, 0},
        {"--weight-bits", CLI_INT, &o->weight_bits, "--qat: weight bits", 2, 8},
        {"--act-bits", CLI_INT, &o->act_bits, "--qat: activation bits", 2, 8},
        {"--layer-bits", CLI_STR, &o->layer_bits,
         "--qat: mixed precision, weight bits per layer overriding --weight-bits: fc0=8,fc2=8 "
         "(layers fc0, fc1, ...; * wildcards; the last match wins)",
         0, 0},
        {"--per-tensor-weights", CLI_BOOL, &o->per_tensor_weights,
         "--qat: one weight scale per layer instead of one per output channel", 0, 0},
        {"--weight-quant", CLI_STR, &o->weight_quant, CLI_WEIGHT_QUANT_HELP, 0, 0},
        {"--act-quant", CLI_STR, &o->act_quant,
         "--qat: ema, minmax, lsq or pact; or one per point (input first): ema,pact,pact", 0, 0},
        {"--obs-momentum", CLI_FLOAT, &o->obs_momentum, "--qat: ema observer momentum", 1e-6, 1},
    };
    for (int i = 0; i < QAT_N_FLAGS; i++) rows[i] = f[i];
}

void qat_flags_given(qat_opts *o, const cli_cmd *cmd, const bool *seen) {
    static const char *const quant[] = {"--fp32-epochs",  "--freeze-after", "--weight-bits",
                                        "--act-bits",     "--layer-bits",   "--per-tensor-weights",
                                        "--weight-quant", "--act-quant",    "--obs-momentum"};
    o->quant_flag = cli_first_given(cmd, seen, quant, (int)(sizeof quant / sizeof quant[0]));
}

static int usage(const char *flag) {
    fprintf(stderr, "octet train mlp: %s: %s\n", flag, oct_last_error());
    return CLI_USAGE;
}

int qat_setup(const qat_opts *o, mlp_model *m, int epochs, int64_t per_epoch, int threads,
              int *qat_start) {
    *qat_start = epochs;
    if (!o->on) {
        const char *flag = o->from                 ? "--from"
                           : o->layer_bits         ? "--layer-bits"
                           : o->per_tensor_weights ? "--per-tensor-weights"
                                                   : NULL;
        if (flag) fprintf(stderr, "octet train mlp: %s needs --qat\n", flag);
        return flag ? CLI_USAGE : CLI_OK;
    }
    oct_qat_config cfg;
    oct_qat_config_default(&cfg);
    cfg.momentum = o->obs_momentum;
    cfg.freeze_after = o->freeze_after < 0 ? per_epoch : o->freeze_after;
    const cli_quant q = {
        o->weight_bits,
        o->act_bits,
        0,
        o->per_tensor_weights,
        o->weight_quant
            ? o->weight_quant
            : cli_default_weight_quant(o->weight_bits, o->layer_bits, o->per_tensor_weights),
        o->act_quant,
        o->layer_bits,
    };
    if (cli_train_quant("train mlp", &q, &cfg)) return CLI_USAGE;
    int warmup = o->from ? 0 : o->fp32_epochs < 0 ? epochs / 2 : o->fp32_epochs;
    if (warmup >= epochs) {
        fprintf(stderr, "octet train mlp: --fp32-epochs %d leaves no QAT epoch of %d\n", warmup,
                epochs);
        return CLI_USAGE;
    }
    if (o->from) { /* the saved model replaces m; its sizes must be the flags' */
        int n = m->mlp.n_layers, sizes[CLI_MAX_INTS + 2];
        memcpy(sizes, m->mlp.sizes, (size_t)(n + 1) * sizeof *sizes);
        mlp_model_free(m);
        if (mlp_model_load(m, o->from)) return cli_fail(NULL); /* m is left empty */
        bool same = m->mlp.n_layers == n;
        for (int i = 0; same && i <= n; i++) same = m->mlp.sizes[i] == sizes[i];
        if ((m->qat && o->quant_flag) || !same) {
            fprintf(stderr, "octet train mlp: --from %s: %s%s\n", o->from,
                    !same ? "its layer sizes differ from --hidden and the data"
                          : "a QAT model, whose quantizers come with it: drop ",
                    same ? o->quant_flag : "");
            return CLI_USAGE;
        }
        if (m->qat) {
            oct_qat_mlp_set_threads(m->qat, threads);
            *qat_start = 0;
            fprintf(stderr,
                    "octet: --from %s: a QAT model; every epoch is QAT with its quantizers\n",
                    o->from);
            return CLI_OK;
        }
    }
    if (mlp_model_enable_qat(m, &cfg)) return usage("--qat");
    oct_qat_mlp_set_threads(m->qat, threads);
    *qat_start = warmup;
    fprintf(stderr,
            "octet: QAT int%d%s weights (%s%s%s), uint%d activations (%s), %d fp32 warm-up "
            "epochs, observers freeze after %lld steps\n",
            cfg.weight_bits, o->per_tensor_weights ? " per-tensor" : "", q.weight_quant,
            o->layer_bits ? ", " : "", o->layer_bits ? o->layer_bits : "", cfg.act_bits,
            o->act_quant, warmup, (long long)cfg.freeze_after);
    return CLI_OK;
}

void qat_begin_epoch(mlp_model *m, int e, int qat_start, double acc) {
    if (e != qat_start || !m->qat) return;
    if (e > 0) printf("fp32 warm-up done: test accuracy %.2f%% after %d epochs\n", 100 * acc, e);
    m->qat_on = true;
}
