/* `octet train gpt`'s command line: the flags and their defaults, the checks and derived
 * defaults after parsing, and --resume's merging of the checkpoint's flags with the new ones.
 * The run itself is in train_gpt.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "train_gpt.h"

/* The peak lr of a fine-tune (--from) unless --lr is given, by the narrowest weight bits of a
 * --qat run. 600 QAT steps from the default fp32 model (1.1710 nats/char) with int8 embeddings
 * reach, at 8 bits, 1.1670 at 1e-4, 1.1686 at 3e-5, 1.1694 at 3e-4, 1.1746 at 1e-3 and 1.2097
 * at 6e-3 (the training default, which undoes much of a converged model); at 4 bits 1.1779 at
 * 1e-4, 1.1790 at 3e-4, 1.1818 at 1e-3; at 3 bits 1.2333 at 1e-4, 1.2204 at 1e-3, 1.2390 at
 * 3e-3; at 2 bits 2.2279 at 1e-4, 1.6864 at 1e-3, 1.6189 at 3e-3, 1.6697 at 1e-2 (narrow codes
 * need larger steps to move the weights across their wide bins). Those are min-max weights; with
 * LSQ's learned steps (the default at 3 bits or fewer) 1e-3 is best at 2 bits too: 1.3063 at
 * 3e-4, 1.2616 at 1e-3, 1.2731 at 3e-3 (3 bits: 1.1954, 1.1934, 1.2155). */
#define FROM_LR 1e-4f
#define FROM_LR_3BIT 1e-3f
#define FROM_LR_2BIT 3e-3f
#define FROM_LR_LSQ_2BIT 1e-3f
/* The same from a QAT or calibrated model, by its own narrowest bits. From the codes of the
 * earlier one-pass GPTQ (calibrate --weight-quant gptq --embed-bits 8), 600 QAT steps reach at
 * 4 bits (1.1847) 1.1805 at 1e-4 and 1.1789 at 3e-4; at 3 bits (1.2374) 1.2223 at 1e-4, 1.2021
 * at 3e-4, 1.1985 at 1e-3; at 2 bits (2.1951) 1.7732 at 3e-4, 1.3527 at 1e-3, 1.2927 at 3e-3.
 * From the layer-by-layer GPTQ's (1.1837, 1.2324, 1.8428): 1.1768 at 3e-4, 1.1958 at 1e-3,
 * 1.2925 at 3e-3; with act-order (1.1832, 1.2248, 1.8011): 1.1792, 1.1961, 1.2876. */
/* --confidence-penalty, fine-tunes included. Without it the default model (then with learned
 * positions) scores 1.1690 nats/char and is over-confident on the validation text (its logits
 * divided by 1.2 score 1.153); with 0.1, 1.1583 (best temperature 1.05); 0.3 trails by 0.2 at
 * step 1,500. 600 QAT steps (--embed-bits 8) from the default model (1.1472) reach 1.1432 with
 * it and 1.1530 without; at 2-bit weights 1.2262 and 1.2277. */
#define DEFAULT_PENALTY 0.1f
/* --positions of a run from scratch: the rotary embedding alone, without the learned position
 * embedding: 1.1472, 1.1459 and 1.1484 with seeds 1, 2 and 3; with both (learned+rope) 1.1533,
 * 1.1488 and 1.1510; with learned positions alone 1.1583 (seed 1). */
#define DEFAULT_POSITIONS "rope"
/* The flags a --resume may give again; they are not part of a run's recorded options. */
#define RUN_FLAGS " --resume --threads --text --log --save --checkpoint --stop-after --eval-every "

float train_gpt_from_lr(int bits, bool lsq_from_fp32) {
    return bits <= 2   ? (lsq_from_fp32 ? FROM_LR_LSQ_2BIT : FROM_LR_2BIT)
           : bits == 3 ? FROM_LR_3BIT
                       : FROM_LR;
}

int train_gpt_fail_flag(const char *flag) {
    return cli_qat_fail("train gpt", flag); /* a QAT setup's error names its own flag */
}

/* cli_parse_seen without positional arguments. */
static int parse(const cli_cmd *cmd, int argc, char **argv, bool *seen) {
    const char *pos[1];
    int n_pos;
    return cli_parse_seen(cmd, argc, argv, pos, &n_pos, seen);
}

/* With --resume the run's flags come from the checkpoint: only these may be given. */
static int check_resume_flags(const cli_cmd *cmd, const bool *seen, const char *resume) {
    for (int i = 0; i < cmd->n_flags; i++) {
        if (!seen[i] || cli_flag_listed(RUN_FLAGS, cmd->flags[i].name)) continue;
        fprintf(stderr,
                "octet train gpt: %s: the run's flags come from --resume %s (only --threads, "
                "--text, --log, --save, --checkpoint, --stop-after and --eval-every may change)\n",
                cmd->flags[i].name, resume);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* Parses the arguments recorded in the checkpoint ck alone, before they are merged with the
 * command line's: an error in them (a file edited by hand), or a --help, is one line naming ck. */
static int parse_recorded(const cli_cmd *cmd, int argc, char **argv, bool *seen, const char *ck) {
    char context[4200];
    snprintf(context, sizeof context, "--resume %s: its recorded arguments", ck);
    return cli_parse_recorded(cmd, context, argc, argv, seen);
}

/* Refuses --checkpoint path, an existing file that this run would overwrite. */
static int refuse_checkpoint(const char *path) {
    int steps, done = gpt_checkpoint_step(path, &steps);
    if (done >= 0 && steps > 0 && done >= steps)
        fprintf(stderr,
                "octet train gpt: --checkpoint %s holds the checkpoint of a finished run (step %d "
                "of %d): remove it to start a new run\n",
                path, done, steps);
    else if (done >= 0)
        fprintf(stderr,
                "octet train gpt: --checkpoint %s holds the checkpoint of a run after step %d: "
                "continue it with --resume %s, or remove it to start a new run\n",
                path, done, path);
    else
        fprintf(stderr,
                "octet train gpt: --checkpoint %s exists and is no checkpoint: a run writes a new "
                "file there (or continues the one it resumes); choose another name\n",
                path);
    return CLI_FAIL;
}

/* The flags a checkpoint does not store as given: --resume and --stop-after (not part of the
 * run), then the outputs, which it stores as absolute paths (record_args). */
static const char *const UNRECORDED[] = {"--resume", "--stop-after", "--save", "--log",
                                         "--checkpoint"};
#define N_OUTPUTS 3
static const char *const *const OUTPUTS = UNRECORDED + 2;

/* Whether arg is one of UNRECORDED ("--save" or "--save=..."). */
static bool unrecorded(const char *arg) {
    for (size_t k = 0; k < sizeof UNRECORDED / sizeof UNRECORDED[0]; k++) {
        size_t len = strlen(UNRECORDED[k]);
        if (!strncmp(arg, UNRECORDED[k], len) && (arg[len] == '\0' || arg[len] == '=')) return true;
    }
    return false;
}

/* What a checkpoint stores of the command line argv, into out (argc + N_OUTPUTS entries): argv
 * without --resume and --stop-after, with the outputs (--save, --log, --checkpoint) as
 * "--FLAG=ABSOLUTE-PATH" (allocated into owned), so that a run resumed from another directory
 * writes where the run it continues wrote. Returns the count, or -1 out of memory. */
static int record_args(const gpt_opts *o, int argc, char **argv, char **out,
                       char *owned[N_OUTPUTS]) {
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!unrecorded(argv[i]))
            out[n++] = argv[i];
        else if (!strchr(argv[i], '='))
            i++; /* and its value */
    }
    const char *paths[N_OUTPUTS] = {o->save, o->log, o->checkpoint}; /* as OUTPUTS */
    for (int k = 0; k < N_OUTPUTS; k++) {
        if (!paths[k]) continue;
        char *abs = cli_abs_path(paths[k]);
        bool ok = abs && asprintf(&owned[k], "%s=%s", OUTPUTS[k], abs) >= 0;
        free(abs);
        if (!ok) {
            owned[k] = NULL; /* asprintf leaves it undefined */
            return -1;
        }
        out[n++] = owned[k];
    }
    return n;
}

/* o->qat_cfg from the --qat flags (freeze_after resolved); a bad value is a usage error naming
 * the flag, reported before any work. */
static int qat_config(gpt_opts *o) {
    oct_qat_config *cfg = &o->qat_cfg;
    oct_qat_config_default(cfg);
    cfg->freeze_after = o->freeze_after;
    const cli_quant q = {o->weight_bits,  o->act_bits,  o->embed_bits, o->per_tensor_weights,
                         o->weight_quant, o->act_quant, o->layer_bits};
    return cli_train_quant("train gpt", &q, cfg);
}

/* The checks and derived defaults after parsing. */
static int check_opts(gpt_opts *o, const cli_cmd *cmd, const bool *seen) {
    /* --from takes the saved model's architecture: its flags are errors */
    static const char *const arch[] = {"--byte-level", "--layers",  "--heads",
                                       "--width",      "--context", "--mlp",
                                       "--tied",       "--gelu",    "--positions"};
    const char *a =
        o->from ? cli_first_given(cmd, seen, arch, (int)(sizeof arch / sizeof arch[0])) : NULL;
    if (a) {
        fprintf(stderr, "octet train gpt: %s: the architecture comes from --from %s\n", a, o->from);
        return CLI_USAGE;
    }
    static const char *const quant[] = {"--qat-steps",  "--freeze-after",       "--weight-quant",
                                        "--act-quant",  "--weight-bits",        "--act-bits",
                                        "--layer-bits", "--per-tensor-weights", "--embed-bits"};
    o->quant_flag = cli_first_given(cmd, seen, quant, (int)(sizeof quant / sizeof quant[0]));
    if (!o->qat && o->quant_flag) { /* --from a QAT model needs --qat too (make_model) */
        fprintf(stderr, "octet train gpt: %s needs --qat\n", o->quant_flag);
        return CLI_USAGE;
    }
    if (o->qat && o->qat_steps == 0) {
        fprintf(stderr, "octet train gpt: --qat-steps 0: expected at least 1 with --qat\n");
        return CLI_USAGE;
    }
    if (o->stop_after && !o->checkpoint) {
        fprintf(stderr, "octet train gpt: --stop-after needs --checkpoint FILE\n");
        return CLI_USAGE;
    }
    if (!cli_given(cmd, seen, "--warmup") && o->warmup > o->steps / 10) o->warmup = o->steps / 10;
    if (o->warmup >= o->steps) {
        fprintf(stderr, "octet train gpt: --warmup %d: expected fewer than --steps %d\n", o->warmup,
                o->steps);
        return CLI_USAGE;
    }
    if (o->qat_steps < 0) o->qat_steps = o->from ? o->steps : o->steps / 2 > 0 ? o->steps / 2 : 1;
    if (o->qat_steps > o->steps) o->qat_steps = o->steps;
    if (o->freeze_after < 0) o->freeze_after = o->qat_steps / 2;
    bool exact_gelu;
    if (cli_gelu("train gpt", o->gelu, &exact_gelu)) return CLI_USAGE;
    if (o->width % o->heads) {
        fprintf(stderr, "octet train gpt: --heads %d must divide --width %d\n", o->heads, o->width);
        return CLI_USAGE;
    }
    oct_gpt_config pos = {0};
    if (cli_positions("train gpt", o->positions, &pos)) return CLI_USAGE;
    if (pos.rope && o->width / o->heads % 2) {
        fprintf(stderr,
                "octet train gpt: --positions %s%s needs an even head size, not %d (--width / "
                "--heads): give --positions learned, or other sizes\n",
                o->positions, strcmp(o->positions, DEFAULT_POSITIONS) ? "" : " (the default)",
                o->width / o->heads);
        return CLI_USAGE;
    }
    if (o->embed_bits == 1) {
        fprintf(stderr, "octet train gpt: --embed-bits 1: expected 0 (float32) or 2..8\n");
        return CLI_USAGE;
    }
    if (!o->weight_quant) /* resolved for every run, so a checkpoint records it */
        o->weight_quant =
            cli_default_weight_quant(o->weight_bits, o->layer_bits, o->per_tensor_weights);
    int rc = o->qat ? qat_config(o) : CLI_OK;
    o->lr_given = cli_given(cmd, seen, "--lr");
    if (o->penalty == 0.0f) o->penalty = 0.0f; /* also -0 */
    if (rc == CLI_OK && o->from && !o->lr_given)
        o->lr = train_gpt_from_lr(o->qat ? oct_qat_config_min_weight_bits(&o->qat_cfg) : 8,
                                  o->qat && o->qat_cfg.weight_mode == OCT_QAT_W_LSQ);
    return rc;
}

/* o->options: the flags that define the run, after defaults, and the recipe's constants. */
static int record_options(gpt_opts *o, const cli_cmd *cmd) {
    int n = cli_values(cmd, RUN_FLAGS "--from ", o->options, sizeof o->options);
    if (n >= 0 &&
        snprintf(o->options + n, sizeof o->options - (size_t)n, " muon-momentum-warmup=%d",
                 MUON_MOMENTUM_WARMUP) < (int)sizeof o->options - n)
        return CLI_OK;
    return cli_fail("the run's options are too long to record");
}

int cmd_train_gpt(int argc, char **argv) {
    const gpt_opts defaults = {
        .text = OCT_DEFAULT_TEXT,
        .schedule = "linear",
        .optim = "muon",
        .gelu = "tanh",
        .positions = DEFAULT_POSITIONS,
        .layers = 4,
        .heads = 4,
        .width = 128,
        .context = 128,
        .mlp = 512,
        .batch = 32,
        .steps = 3660,
        .warmup = 200,
        .seed = 1,
        .threads = 1,
        .eval_every = 500,
        .eval_batches = GPT_EVAL_BATCHES,
        .lr = 6e-3f,
        .min_lr = 0.0f,
        .decay = 1.0f,
        .wd = 0.2f,
        .clip = 1.0f,
        .beta2 = 0.99f,
        .penalty = DEFAULT_PENALTY,
        .qat_steps = -1,
        .freeze_after = -1,
        .act_quant = "ema",
        .weight_bits = 8,
        .act_bits = 8,
    };
    gpt_opts o = defaults;
    const cli_flag flags[] = {
        {"--text", CLI_STR, &o.text,
         "training text (90% train, last 10% validation; unset with --from or --resume: the "
         "model's own)",
         0, 0},
        {"--from", CLI_STR, &o.from,
         "fine-tune this saved fp32 GPT (its architecture and vocabulary; with --qat, all steps "
         "QAT unless --qat-steps), or with --qat a QAT or calibrated one (its quantizers too)",
         0, 0},
        {"--byte-level", CLI_BOOL, &o.byte_level, "all 256 bytes as the vocabulary", 0, 0},
        {"--layers", CLI_INT, &o.layers, "transformer blocks", 1, 64},
        {"--heads", CLI_INT, &o.heads, "attention heads (must divide --width)", 1, 64},
        {"--width", CLI_INT, &o.width, "residual stream width", 1, 8192},
        {"--context", CLI_INT, &o.context, "context length in characters", 1, 8192},
        {"--mlp", CLI_INT, &o.mlp, "hidden width of each block's MLP", 1, 65536},
        {"--tied", CLI_BOOL, &o.tied, "tie the output layer to the token embedding", 0, 0},
        {"--gelu", CLI_STR, &o.gelu,
         "tanh (the tanh approximation) or erf (exact, PyTorch's nn.GELU() default)", 0, 0},
        {"--positions", CLI_STR, &o.positions,
         "learned (a learned position embedding), learned+rope (queries and keys also rotated "
         "by position: rotary embedding) or rope (the rotation alone; the default)",
         0, 0},
        {"--dropout", CLI_FLOAT, &o.dropout, "dropout after embeddings and residual branches", 0,
         0.99},
        {"--batch", CLI_INT, &o.batch, "windows per step", 1, 65536},
        {"--steps", CLI_INT, &o.steps, "training steps", 1, 1e9},
        {"--optim", CLI_STR, &o.optim,
         "adamw, or muon (Muon for the blocks' matrices, AdamW for the rest, one --lr)", 0, 0},
        {"--lr", CLI_FLOAT, &o.lr,
         "peak learning rate (--from: 1e-4 unless given; with --qat, by the narrowest weight "
         "bits, the flags' or a QAT model's own: 1e-3 at 3 bits; at 2 bits 3e-3, but 1e-3 for "
         "lsq weights from a fp32 model)",
         1e-9, 10},
        {"--schedule", CLI_STR, &o.schedule,
         "constant, step (halve every 1000), cosine, or linear (constant, then a linear decay)", 0,
         0},
        {"--warmup", CLI_INT, &o.warmup, "linear warmup steps (unless given, at most --steps / 10)",
         0, 1e9},
        {"--min-lr", CLI_FLOAT, &o.min_lr, "cosine, linear: final lr as a fraction of --lr", 0, 1},
        {"--decay", CLI_FLOAT, &o.decay,
         "linear: fraction of the steps after warmup spent decaying", 0.001, 1},
        {"--wd", CLI_FLOAT, &o.wd, "weight decay (not on biases and LayerNorms)", 0, 10},
        {"--beta2", CLI_FLOAT, &o.beta2, "AdamW beta2", 0, 0.99999},
        {"--clip", CLI_FLOAT, &o.clip, "clip the global gradient norm (0: off)", 0, 1e9},
        {"--confidence-penalty", CLI_FLOAT, &o.penalty, CLI_PENALTY_HELP, 0, 10},
        {"--seed", CLI_INT, &o.seed, "random seed (init, batches, dropout)", 0, 2147483647},
        {"--threads", CLI_INT, &o.threads, "threads", 1, 256},
        {"--eval-every", CLI_INT, &o.eval_every, "validation every N steps (0: only at the end)", 0,
         1e9},
        {"--eval-batches", CLI_INT, &o.eval_batches, "validation batches (32 fixed windows each)",
         1, 1e6},
        {"--log", CLI_STR, &o.log, "write metrics as JSON Lines to FILE", 0, 0},
        {"--save", CLI_STR, &o.save, "save the trained model (safetensors) to FILE", 0, 0},
        {"--checkpoint", CLI_STR, &o.checkpoint,
         "write the model, optimizer state and run to FILE at every validation (for --resume)", 0,
         0},
        {"--resume", CLI_STR, &o.resume,
         "continue the run that wrote the checkpoint FILE, with its flags, bit for bit", 0, 0},
        {"--stop-after", CLI_INT, &o.stop_after,
         "stop after step N and write the checkpoint (0: run to --steps)", 0, 1e9},
        {"--qat", CLI_BOOL, &o.qat, "quantization-aware training (fp32 steps, then int8 QAT)", 0,
         0},
        {"--qat-steps", CLI_INT, &o.qat_steps, "--qat: QAT steps at the end (-1: half of --steps)",
         -1, 1e9},
        {"--freeze-after", CLI_INT, &o.freeze_after,
         "--qat: freeze observers after N QAT steps (-1: half of them, 0: never)", -1, 1e9},
        {"--weight-quant", CLI_STR, &o.weight_quant, CLI_WEIGHT_QUANT_HELP, 0, 0},
        {"--act-quant", CLI_STR, &o.act_quant, "--qat: activation quantizers: ema, minmax or lsq",
         0, 0},
        {"--weight-bits", CLI_INT, &o.weight_bits,
         "--qat: weight bits (up to 4 exported as packed indices)", 2, 8},
        {"--act-bits", CLI_INT, &o.act_bits, "--qat: activation bits (codes stored as uint8)", 2,
         8},
        {"--layer-bits", CLI_STR, &o.layer_bits,
         "--qat: mixed precision, weight bits per layer overriding --weight-bits: lm_head=8 "
         "(layers h.0.attn.qkv, h.0.attn.proj, h.0.mlp.fc, h.0.mlp.proj, ..., lm_head; * "
         "wildcards; the last match wins)",
         0, 0},
        {"--per-tensor-weights", CLI_BOOL, &o.per_tensor_weights,
         "--qat: one weight scale per layer instead of one per output channel", 0, 0},
        {"--embed-bits", CLI_INT, &o.embed_bits,
         "--qat: token and position embeddings as N-bit codes per row (0: float32; 2..8; up "
         "to 4 exported as packed indices)",
         0, 8},
    };
    cli_cmd cmd = {"train gpt",
                   "[flags]",
                   "Trains a character-level GPT on a text file and prints the validation loss\n"
                   "in nats and bits per character. The default corpus is written by\n"
                   "`bash datasets/prepare_text.sh`.",
                   flags,
                   (int)(sizeof flags / sizeof flags[0]),
                   0,
                   0};
    bool seen[sizeof flags / sizeof flags[0]];
    int rc = parse(&cmd, argc, argv, seen);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    bool text_given = cli_given(&cmd, seen, "--text"); /* on this command line */
    bool checkpoint_given = cli_given(&cmd, seen, "--checkpoint");
    char **saved = NULL, **all = NULL;
    int n_saved = 0;
    if (o.resume) { /* the checkpoint's command line, then this one's */
        if ((rc = check_resume_flags(&cmd, seen, o.resume)) != CLI_OK) return rc;
        if (gpt_checkpoint_args(o.resume, &n_saved, &saved)) return cli_fail(NULL);
        rc = parse_recorded(&cmd, n_saved, saved, seen, o.resume);
        all = rc == CLI_OK ? malloc((size_t)(n_saved + argc) * sizeof *all) : NULL;
        if (rc == CLI_OK && !all) rc = cli_fail("out of memory");
        if (rc == CLI_OK) {
            memcpy(all, saved, (size_t)n_saved * sizeof *all);
            memcpy(all + n_saved, argv, (size_t)argc * sizeof *all);
            o = defaults;
            argc += n_saved;
            argv = all;
            rc = parse(&cmd, argc, argv, seen);
        }
    }
    /* without --text, a saved model's run goes on with the text it records (a checkpoint's own
     * --text may be relative to another directory) */
    char *recorded = NULL;
    if (rc == CLI_OK && !text_given && (o.resume || o.from))
        rc = cli_file_source(o.resume ? o.resume : o.from, "--text", &recorded);
    if (recorded) o.text = recorded;
    /* a resumed run goes on writing the checkpoint it was resumed from (the recorded
     * --checkpoint may be relative to another directory) */
    if (o.resume && o.checkpoint && !checkpoint_given) o.checkpoint = o.resume;
    char **kept = rc == CLI_OK ? malloc((size_t)(argc + N_OUTPUTS) * sizeof *kept) : NULL;
    char *owned[N_OUTPUTS] = {NULL, NULL, NULL};
    if (rc == CLI_OK && (!kept || (o.argc = record_args(&o, argc, argv, kept, owned)) < 0))
        rc = cli_fail("out of memory");
    if (rc == CLI_OK) {
        o.argv = kept;
        rc = check_opts(&o, &cmd, seen);
    }
    if (rc == CLI_OK && o.checkpoint && gpt_checkpoint_check_args(o.checkpoint, o.argc, o.argv))
        rc = cli_fail(NULL); /* --resume could not read back what the checkpoint records */
    /* the checkpoint is a new file, or the one resumed: never another run's, nor a model */
    if (rc == CLI_OK && o.checkpoint && access(o.checkpoint, F_OK) == 0 &&
        !(o.resume && cli_same_file(o.checkpoint, o.resume)))
        rc = refuse_checkpoint(o.checkpoint);
    if (rc == CLI_OK) rc = record_options(&o, &cmd);
    if (rc == CLI_OK) rc = train_gpt_run(&o);
    for (int k = 0; k < N_OUTPUTS; k++) free(owned[k]);
    free(kept);
    free(all);
    free(recorded);
    gpt_checkpoint_free_args(n_saved, saved);
    return rc;
}
