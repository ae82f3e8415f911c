/* `octet train mlp --qat`: fp32 warm-up epochs, then quantization-aware epochs in which every
 * linear layer runs the shared integer layer (oct_qat_linear_forward) and observers freeze after
 * --freeze-after steps; or, with --from, QAT fine-tuning of a saved fp32 model (no warm-up unless
 * --fp32-epochs), or of a QAT or calibrated one with its own quantizers (without --qat, --from
 * fine-tunes a fp32 model in fp32). The trained model saves
 * with its quantizer state and config (see mlp_model.c) for `octet export`. */
#include "qat_mlp.h"

#include <stdio.h>
#include <string.h>

void qat_flags(qat_opts *o, cli_flag *rows) {
    const cli_flag f[QAT_N_FLAGS] = {
        {"--qat", CLI_BOOL, &o->on,
         "quantization-aware training (fp32 warm-up, then simulated int8)", 0, 0},
        {"--from", CLI_STR, &o->from,
         "fine-tune this saved model, with its layers and activation: a fp32 one (in fp32, or "
         "with --qat under QAT, no warm-up unless --fp32-epochs), or with --qat a QAT or "
         "calibrated one with its quantizers (their flags refused)",
         0, 0},
        {"--fp32-epochs", CLI_INT, &o->fp32_epochs,
         "--qat: fp32 warm-up epochs before QAT (-1: half of --epochs; with --from, 0)", -1,
         100000},
        {"--freeze-after", CLI_INT, &o->freeze_after,
         "--qat: freeze observers after N QAT steps (-1: one epoch, 0: never)", -1, 1e9},
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

int qat_check(qat_opts *o, const cli_cmd *cmd, const bool *seen, int epochs) {
    int first = 0; /* the --qat row; --from follows it, then the quantizer flags */
    while (strcmp(cmd->flags[first].name, "--qat")) first++;
    o->quant_flag = NULL;
    for (int i = first + 2; i < first + QAT_N_FLAGS && !o->quant_flag; i++)
        if (seen[i]) o->quant_flag = cmd->flags[i].name;
    if (!o->on) {
        if (o->quant_flag) fprintf(stderr, "octet train mlp: %s needs --qat\n", o->quant_flag);
        return o->quant_flag ? CLI_USAGE : CLI_OK;
    }
    oct_qat_config_default(&o->cfg);
    o->cfg.momentum = o->obs_momentum;
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
    if (cli_train_quant("train mlp", &q, &o->cfg)) return CLI_USAGE;
    if (o->fp32_epochs < 0) o->fp32_epochs = o->from ? 0 : epochs / 2;
    if (o->fp32_epochs >= epochs) {
        fprintf(stderr, "octet train mlp: --fp32-epochs %d leaves no QAT epoch of --epochs %d\n",
                o->fp32_epochs, epochs);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int qat_load_from(const qat_opts *o, mlp_model *m) {
    if (mlp_model_load(m, o->from)) return cli_fail(NULL); /* m is left empty */
    if (m->qat && !o->on) {
        fprintf(stderr,
                "octet train mlp: --from %s: a QAT model, fine-tuned under QAT only: add "
                "--qat\n",
                o->from);
        mlp_model_free(m);
        return CLI_USAGE;
    }
    if (m->qat && o->quant_flag) {
        fprintf(stderr,
                "octet train mlp: --from %s: a QAT model, whose quantizers come with it: "
                "drop %s\n",
                o->from, o->quant_flag);
        mlp_model_free(m);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int qat_setup(qat_opts *o, mlp_model *m, int64_t per_epoch, int threads, int *qat_start) {
    *qat_start = o->fp32_epochs;
    if (!o->on) return CLI_OK;
    char quant[OCT_QAT_LAYER_BITS_LEN + 128];
    if (m->qat) { /* a QAT --from model */
        oct_qat_mlp_set_threads(m->qat, threads);
        *qat_start = 0;
        cli_qat_desc(&m->qat->cfg, quant, sizeof quant);
        fprintf(stderr,
                "octet: --from %s: a QAT model, %s, observers frozen after %lld steps (%lld done); "
                "every epoch is QAT with its quantizers\n",
                o->from, quant, (long long)m->qat->cfg.freeze_after, (long long)m->qat->steps);
        return CLI_OK;
    }
    o->cfg.freeze_after = o->freeze_after < 0 ? per_epoch : o->freeze_after;
    if (mlp_model_enable_qat(m, &o->cfg)) {
        char flag[4200];
        snprintf(flag, sizeof flag, "%s%s", o->from ? "--from " : "--qat", o->from ? o->from : "");
        return cli_qat_fail("train mlp", flag);
    }
    oct_qat_mlp_set_threads(m->qat, threads);
    cli_qat_desc(&o->cfg, quant, sizeof quant);
    fprintf(stderr, "octet: QAT %s, %d fp32 warm-up epochs, observers freeze after %lld steps\n",
            quant, o->fp32_epochs, (long long)o->cfg.freeze_after);
    return CLI_OK;
}

void qat_begin_epoch(mlp_model *m, int e, int qat_start, double acc) {
    if (e != qat_start || !m->qat) return;
    if (e > 0)
        printf("fp32 warm-up done: test accuracy %.2f%% after %d epoch%s\n", 100 * acc, e,
               e == 1 ? "" : "s");
    m->qat_on = true;
}
