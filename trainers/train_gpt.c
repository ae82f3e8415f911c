/* `octet train gpt`: trains a character-level GPT on a text file (the King James Bible by
 * default), reports the validation loss in nats and bits per character on a fixed set of
 * validation windows, logs metrics as JSON Lines and saves the fp32 model with its vocabulary.
 *
 * Default recipe (4 layers, 4 heads, width 128, context 128, MLP 512, batch 32; positions by the
 * rotary embedding alone, no learned position embedding; a confidence penalty of 0.1): Muon for the
 * blocks' linear weights (q, k and v apart, momentum warmup) and AdamW (betas 0.9, 0.99) for
 * embeddings, LM head, biases and LayerNorms, one lr 6e-3 with 200 warmup steps and a linear
 * decay to 0 over 3660 steps (15M training tokens), weight decay 0.2 on matrices and
 * embeddings only, gradient clipping at 1.0. */
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpt_model.h"
#include "octet/optim.h"
#include "train_gpt.h"

/* Validation windows are drawn with this seed whatever --seed is, so runs compare. */
#define EVAL_SEED GPT_EVAL_SEED
/* Training loss goes to the log every this many steps. */
#define LOG_EVERY 10
/* Nats per bit. */
#define LN2 0.69314718055994531

/* Validation loss on the fixed windows; prints and logs it. */
static int report_val(gpt_model *m, oct_graph *g, const oct_text *text, const gpt_opts *o, int step,
                      double train_loss, double *val, cli_log *jl) {
    if (gpt_model_evaluate(m, g, text, OCT_SPLIT_VAL, o->eval_batches, 0, GPT_EVAL_WINDOWS,
                           o->context, EVAL_SEED, val))
        return cli_fail(NULL);
    char where[32];
    snprintf(where, sizeof where, "at step %d", step);
    if (cli_check_diverged(&m->params, *val, where)) return CLI_FAIL; /* the last update */
    printf("step %d/%d  train loss %.4f  val loss %.4f nats/char (%.4f bits/char)\n", step,
           o->steps, train_loss, *val, *val / LN2);
    fflush(stdout);
    cli_log_write(jl, json_pack("{s:s, s:i, s:f, s:f, s:f}", "event", "eval", "step", step,
                                "train_loss", train_loss, "val_loss", *val, "val_bpc", *val / LN2));
    return CLI_OK;
}

/* One batch of windows, shared by the shards of a data-parallel step. */
typedef struct batch_ctx {
    gpt_model *m;
    const int32_t *x, *y; /* (B,T) */
    int B, T;
    float penalty; /* --confidence-penalty */
} batch_ctx;

/* Forward and backward of this shard's windows; returns the shard's cross-entropy (without the
 * confidence penalty), like the objective weighted by the shard's share. */
static float train_shard(void *arg, oct_graph *g, int shard, int shards) {
    const batch_ctx *b = arg;
    int lo, hi;
    oct_dp_range(b->B, shard, shards, &lo, &hi);
    const int32_t *x = b->x + (int64_t)lo * b->T, *y = b->y + (int64_t)lo * b->T;
    float ce, share = (float)(hi - lo) / (float)b->B;
    oct_tensor *loss =
        oct_gpt_loss(g, gpt_model_forward(b->m, g, x, hi - lo, b->T), y, b->penalty, &ce);
    oct_graph_backward(g, oct_scale(g, loss, share));
    return ce * share;
}

/* The signal that interrupted a run with --checkpoint (SIGINT, SIGTERM), or 0. */
static volatile sig_atomic_t interrupted;

/* SIGINT's and SIGTERM's actions outside the run (cli_catch_signals'), while the run's are in
 * place. */
static struct sigaction outside[2];
static bool caught;

static void on_interrupt(int sig) {
    interrupted = sig;
    sigaction(SIGINT, &outside[0], NULL); /* a second one is handled as outside the run */
    sigaction(SIGTERM, &outside[1], NULL);
}

/* With a checkpoint to write, SIGINT and SIGTERM end the run after the current step; a second
 * one ends it at once as outside the run (removing the temporary file of a checkpoint being
 * written, cli_catch_signals). Without a checkpoint, and after the run, they act as outside. */
static void catch_interrupts(bool on) {
    if (on && !caught) {
        struct sigaction sa = {0};
        sa.sa_handler = on_interrupt;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, NULL, &outside[0]); /* saved before on_interrupt can read them */
        sigaction(SIGTERM, NULL, &outside[1]);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    } else if (!on && caught) {
        sigaction(SIGINT, &outside[0], NULL);
        sigaction(SIGTERM, &outside[1], NULL);
    }
    caught = on;
}

/* Writes the --checkpoint after `step` steps, with loss_sum and loss_n, the training losses
 * since the last validation. */
static int save_checkpoint(const gpt_model *m, const oct_optim *opt, gpt_run *run,
                           oct_rng *const *rngs, int n_rng, int step, double loss_sum, int loss_n,
                           const gpt_opts *o) {
    run->step = step;
    run->loss_sum = loss_sum;
    run->loss_n = loss_n;
    run->n_rng = n_rng;
    for (int i = 0; i < n_rng; i++) run->rng[i] = *rngs[i];
    if (gpt_checkpoint_save(o->checkpoint, m, opt, run, o->argc, o->argv)) return cli_fail(NULL);
    return CLI_OK;
}

/* Trains from step run->step + 1 (0: a new run) to --steps, or to --stop-after (*stopped).
 * Steps are data parallel over the threads (one shard per thread, split by windows), except
 * the first QAT step, whose observers have no range yet: it sees the whole batch on one graph.
 * In data-parallel QAT steps the observers update after the step from the shards' ranges. */
static int train(gpt_model *m, oct_optim *opt, const oct_schedule *sched, const oct_text *text,
                 const gpt_opts *o, cli_log *jl, gpt_run *run, bool *stopped) {
    int B = o->batch, T = o->context;
    int shards = o->threads < B ? o->threads : B;
    shards = shards < OCT_DP_MAX_SHARDS ? shards : OCT_DP_MAX_SHARDS;
    oct_graph g;
    oct_graph_init(&g, 0, (uint64_t)o->seed);
    oct_dp dp_split = {0}, dp_whole = {0};
    if (oct_dp_init(&dp_split, &m->params, shards, (uint64_t)o->seed) ||
        oct_dp_init(&dp_whole, &m->params, 1, (uint64_t)o->seed)) {
        oct_graph_free(&g);
        return cli_fail(NULL);
    }
    opt->threads = shards;
    int32_t *xy = malloc(2 * (size_t)B * (size_t)T * sizeof *xy);
    if (!xy) {
        oct_graph_free(&g);
        oct_dp_free(&dp_split);
        oct_dp_free(&dp_whole);
        return cli_fail("out of memory for the batch");
    }
    oct_rng rng;
    oct_rng_seed(&rng, (uint64_t)o->seed, 2);
    oct_rng *rngs[GPT_RUN_MAX_RNG]; /* the windows', then the graphs' (dropout) */
    int n_rng = 0, first = run->step + 1, saved = 0;
    rngs[n_rng++] = &rng;
    for (int s = 0; s < shards; s++) rngs[n_rng++] = &dp_split.graphs[s].rng;
    rngs[n_rng++] = &dp_whole.graphs[0].rng;
    if (first > 1 && run->n_rng != n_rng)
        fprintf(stderr,
                "octet: resuming with --threads %d, not the run's: it continues, but not "
                "bit for bit\n",
                o->threads);
    for (int i = 0; first > 1 && i < n_rng && i < run->n_rng; i++) *rngs[i] = run->rng[i];
    catch_interrupts(o->checkpoint != NULL);
    cli_progress bar;
    cli_progress_begin(&bar, "train", o->steps, "tok/s");
    bar.start = first - 1;                                  /* the ETA from this run's pace */
    double t0 = cli_now(), val = 0, recent = run->loss_sum; /* a resumed run's, else 0 */
    int rc = CLI_OK, recent_n = run->loss_n;
    for (int step = first; step <= o->steps && rc == CLI_OK && !*stopped; step++) {
        if (m->qat && !m->qat_on && step > o->steps - o->qat_steps) m->qat_on = true;
        int32_t *x = xy, *y = xy + (int64_t)B * T;
        if (oct_text_batch(text, OCT_SPLIT_TRAIN, &rng, B, T, x, y)) {
            rc = cli_fail(NULL);
            break;
        }
        bool whole = m->qat_on && oct_qat_gpt_needs_whole_batch(m->qat);
        if (whole) cli_set_threads(o->threads); /* data-parallel steps use 1 per shard */
        batch_ctx b = {m, x, y, B, T, o->penalty};
        float loss = oct_dp_step(whole ? &dp_whole : &dp_split, train_shard, &b);
        if (m->qat_on) oct_qat_gpt_commit(m->qat); /* the shards' observed ranges */
        float lr = oct_lr_at(sched, opt->step);
        double norm = oct_clip_grad_norm(&m->params, o->clip);
        if (!isfinite(loss) || !isfinite(norm)) {
            cli_progress_end(&bar);
            fprintf(stderr,
                    "octet: training diverged at step %d (loss %g, gradient norm %g); "
                    "try a lower --lr\n",
                    step, (double)loss, norm);
            rc = CLI_FAIL;
            break;
        }
        oct_optim_step(opt, lr);
        if (m->qat_on) oct_qat_gpt_project(m->qat); /* learned steps stay positive */
        recent += loss;
        recent_n++;
        cli_progress_update(&bar, step, loss, (double)(step - first + 1) * B * T);
        if (step % LOG_EVERY == 0)
            cli_log_write(jl,
                          json_pack("{s:s, s:i, s:f, s:f, s:f, s:b, s:f}", "event", "train", "step",
                                    step, "loss", (double)loss, "lr", (double)lr, "grad_norm", norm,
                                    "qat", m->qat_on, "seconds", cli_now() - t0));
        /* the last fp32 step is validated too (once, whatever --eval-every) */
        bool fp32_done = m->qat && !m->qat_on && step == o->steps - o->qat_steps;
        if ((o->eval_every > 0 && step % o->eval_every == 0) || step == o->steps || fp32_done) {
            cli_progress_end(&bar);
            rc = report_val(m, &g, text, o, step, recent / recent_n, &val, jl);
            if (rc == CLI_OK && fp32_done)
                printf("fp32 phase done: val loss %.4f; QAT for the last %d steps\n", val,
                       o->qat_steps);
            recent = 0;
            recent_n = 0;
            if (rc == CLI_OK && o->checkpoint)
                rc = save_checkpoint(m, opt, run, rngs, n_rng, saved = step, 0.0, 0, o);
        }
        if (rc == CLI_OK && step < o->steps && (step == o->stop_after || interrupted)) {
            cli_progress_end(&bar);
            if (saved != step)
                rc = save_checkpoint(m, opt, run, rngs, n_rng, step, recent, recent_n, o);
            if (rc == CLI_OK)
                printf("%s after step %d of %d; continue with: octet train gpt --resume %s\n",
                       interrupted ? "interrupted" : "stopped", step, o->steps, o->checkpoint);
            if (rc == CLI_OK && interrupted) rc = 128 + interrupted; /* as the shell reports it */
            *stopped = true;
        }
    }
    catch_interrupts(false);
    double dt = cli_now() - t0;
    if (rc == CLI_OK && !*stopped) {
        int done = o->steps - first + 1;
        printf("final val loss %.4f nats/char (%.4f bits/char) after %d steps, %.1f s, "
               "%.0f tok/s (with evaluation)\n",
               val, val / LN2, o->steps, dt, (double)done * B * T / dt);
        cli_log_write(jl, json_pack("{s:s, s:i, s:f, s:f}", "event", "final", "step", o->steps,
                                    "val_loss", val, "seconds", dt));
    }
    free(xy);
    oct_dp_free(&dp_split);
    oct_dp_free(&dp_whole);
    oct_graph_free(&g);
    return rc;
}

/* Adds the quantizer state (before the optimizer) from the --qat flags. The observers freeze
 * after freeze_after QAT steps: 0, or the run's QAT steps or more, leaves them watching to the
 * end; learned (lsq) activation steps have no observers. */
static int enable_qat(gpt_model *m, const gpt_opts *o) {
    if (gpt_model_enable_qat(m, &o->qat_cfg)) return train_gpt_fail_flag("--qat");
    char quant[OCT_QAT_LAYER_BITS_LEN + 128], embed[16], freeze[64] = "";
    bool observers = o->qat_cfg.act_mode[0] != OCT_QAT_A_LSQ;
    if (observers && o->freeze_after > 0 && o->freeze_after < o->qat_steps)
        snprintf(freeze, sizeof freeze, ", observers freeze after %d of them", o->freeze_after);
    else if (observers)
        snprintf(freeze, sizeof freeze, ", observers never freeze");
    cli_qat_desc(&m->qat->cfg, quant, sizeof quant);
    fprintf(stderr, "octet: QAT %s, %s embeddings for the last %d steps%s\n", quant,
            gpt_embed_desc(o->embed_bits, embed, sizeof embed), o->qat_steps, freeze);
    return CLI_OK;
}

/* The model to train and its text: a fresh model of the flags' architecture and the text's
 * vocabulary, or with --from (--resume) the saved fp32 model (the checkpoint's model) and the
 * text encoded with its vocabulary (o then takes the model's architecture). On failure nothing
 * is left to free. */
static int make_model(gpt_model *m, oct_text *text, const char *path, gpt_opts *o) {
    const char *saved = o->resume ? o->resume : o->from;
    if (!saved) {
        if (oct_text_load(text, path, o->byte_level)) return cli_fail(NULL);
        oct_gpt_config cfg = {.vocab = text->vocab.size,
                              .context = o->context,
                              .n_layer = o->layers,
                              .n_head = o->heads,
                              .width = o->width,
                              .mlp = o->mlp,
                              .tied = o->tied,
                              .exact_gelu = !strcmp(o->gelu, "erf"),
                              .dropout = o->dropout};
        (void)cli_positions("train gpt", o->positions, &cfg); /* checked */
        if (gpt_model_init(m, &cfg, &text->vocab, (uint64_t)o->seed) == OCT_OK) return CLI_OK;
        oct_text_free(text);
        return train_gpt_fail_flag("model");
    }
    if (gpt_model_load(m, saved)) return cli_fail(NULL);
    if (m->qat && !o->resume) { /* a QAT or calibrated model: more QAT with its quantizers */
        if (!o->qat || o->quant_flag) {
            fprintf(stderr, "octet train gpt: --from %s: a QAT model, %s%s\n", o->from,
                    !o->qat ? "fine-tuned under QAT only: add --qat"
                            : "whose quantizers come with it: drop ",
                    o->qat ? o->quant_flag : "");
            gpt_model_free(m);
            return CLI_USAGE;
        }
        if (!o->lr_given)
            o->lr = train_gpt_from_lr(oct_qat_config_min_weight_bits(&m->qat->cfg), false);
        fprintf(stderr, "octet: --from %s: a QAT model; every step is QAT with its quantizers\n",
                o->from);
    }
    if (gpt_text_load(text, path, &m->vocab, m->gpt.cfg.context, saved)) {
        gpt_model_free(m);
        return cli_fail(NULL);
    }
    oct_gpt_config *c = &m->gpt.cfg;
    c->dropout = o->dropout;
    o->layers = c->n_layer;
    o->heads = c->n_head;
    o->width = c->width;
    o->context = c->context;
    o->mlp = c->mlp;
    o->tied = c->tied;
    o->gelu = c->exact_gelu ? "erf" : "tanh";
    o->positions = cli_positions_name(c->rope, c->no_wpe);
    return CLI_OK;
}

/* After --resume: the text must be the run's, its options as this octet resolves them the
 * ones recorded, and steps must remain. Records the text and options in run for the
 * checkpoints to come. */
static int check_resume(gpt_run *run, const oct_text *text, const gpt_opts *o) {
    if (!o->resume && !o->checkpoint) return CLI_OK; /* no checkpoint reads or writes the text */
    gpt_run now = *run;
    gpt_run_text(&now, text);
    char diff[512];
    if (o->resume && run->options[0] &&
        !gpt_run_options_match(run->options, o->options, diff, sizeof diff)) {
        fprintf(stderr,
                "octet: --resume %s: the run was written by an octet with other defaults: %s; "
                "resume it with that octet\n",
                o->resume, diff);
        return CLI_FAIL;
    }
    snprintf(now.options, sizeof now.options, "%s", o->options);
    if (o->resume && (now.text_n != run->text_n || now.text_crc != run->text_crc)) {
        fprintf(stderr,
                "octet: --resume %s: --text %s is not the run's text (%lld tokens, crc32 %08x; "
                "this one %lld, %08x)\n",
                o->resume, o->text, (long long)run->text_n, run->text_crc, (long long)now.text_n,
                now.text_crc);
        return CLI_FAIL;
    }
    if (o->resume && run->step >= o->steps) {
        fprintf(stderr, "octet: --resume %s: the run already ended (step %d of %d)\n", o->resume,
                run->step, o->steps);
        return CLI_FAIL;
    }
    if (o->resume && o->stop_after && o->stop_after <= run->step) {
        fprintf(stderr, "octet: --stop-after %d: --resume %s is after step %d already\n",
                o->stop_after, o->resume, run->step);
        return CLI_USAGE;
    }
    *run = now;
    return CLI_OK;
}

int train_gpt_run(const gpt_opts *o) {
    oct_schedule sched = {.lr = o->lr,
                          .warmup = o->warmup,
                          .total = o->steps,
                          .min_ratio = o->min_lr,
                          .step_size = 1000,
                          .gamma = 0.5f};
    if (oct_schedule_kind_parse(o->schedule, &sched.kind)) return train_gpt_fail_flag("--schedule");
    oct_optim_kind kind;
    if (oct_optim_kind_parse(o->optim, &kind) || kind == OCT_OPTIM_SGD) {
        fprintf(stderr, "octet train gpt: --optim '%s': expected adamw or muon\n", o->optim);
        return CLI_USAGE;
    }
    /* at least one step: 0 would mean "decay over the whole span" to the schedule */
    sched.decay = (int64_t)ceil((double)o->decay * (double)(sched.total - sched.warmup));
    if (oct_schedule_check(&sched)) return train_gpt_fail_flag("--schedule");
    if (cli_check_output("--save", o->save) || cli_check_log(o->log) ||
        cli_check_output("--checkpoint", o->checkpoint))
        return CLI_FAIL;
    int bad = cli_check_not_input("--save", o->save, "--text", o->text, "--from", o->from,
                                  "--resume", o->resume, NULL);
    if (!bad)
        bad = cli_check_not_input("--checkpoint", o->checkpoint, "--text", o->text, "--from",
                                  o->from, "--save", o->save, NULL);
    if (!bad)
        bad =
            cli_check_not_input("--log", o->log, "--text", o->text, "--from", o->from, "--resume",
                                o->resume, "--save", o->save, "--checkpoint", o->checkpoint, NULL);
    if (bad) return bad;

    char buf[PATH_MAX + 32];
    const char *path = gpt_text_path(o->text, buf, sizeof buf);
    if (!path) return cli_fail(NULL);
    gpt_opts a = *o; /* with --from, the architecture of the saved model */
    gpt_model m;
    oct_text text;
    int rc = make_model(&m, &text, path, &a);
    if (rc != CLI_OK) return rc;
    free(m.source); /* the model records the text it is trained on now */
    m.source = gpt_text_record(path);
    o = &a;
    sched.lr = o->lr; /* a QAT model's default */
    if (oct_text_split_size(&text, OCT_SPLIT_VAL) <= o->context) {
        fprintf(stderr,
                "octet: %s: the validation split (last 10%%, %lld tokens) is shorter "
                "than --context %d + 1\n",
                path, (long long)oct_text_split_size(&text, OCT_SPLIT_VAL), o->context);
        rc = CLI_FAIL;
    }
    if (rc == CLI_OK && o->qat && !m.qat && enable_qat(&m, o) != CLI_OK) rc = CLI_USAGE;
    if (m.qat) oct_qat_gpt_set_threads(m.qat, o->threads);
    if (rc != CLI_OK) {
        gpt_model_free(&m);
        oct_text_free(&text);
        return rc;
    }
    cli_set_threads(o->threads);
    oct_optim_hyper h = oct_optim_defaults(kind);
    h.weight_decay = o->wd;
    h.no_decay_1d = true;
    h.beta2 = o->beta2;
    if (kind == OCT_OPTIM_MUON) h.momentum_warmup = MUON_MOMENTUM_WARMUP;
    h.muon_select = oct_gpt_muon_blocks;
    h.muon_ctx = &m.gpt;
    oct_optim opt = {0};
    cli_log jl = {0};
    gpt_run state = {0};
    if (oct_optim_init(&opt, kind, &m.params, &m.arena, &h) ||
        (o->resume && gpt_checkpoint_restore(o->resume, &opt, &state))) {
        rc = cli_fail(NULL);
        goto out;
    }
    if ((rc = check_resume(&state, &text, o)) != CLI_OK) goto out;
    if ((rc = cli_log_open(&jl, o->log, o->resume != NULL)) != CLI_OK) goto out;
    char origin[PATH_MAX + 64] = "";
    if (o->resume)
        snprintf(origin, sizeof origin, "; resuming %s after step %d%s", o->resume, state.step,
                 m.qat_on ? " (QAT)" : "");
    else if (o->from)
        snprintf(origin, sizeof origin, "; fine-tuning %s", o->from);
    fprintf(stderr,
            "octet: GPT %d layers, %d heads, width %d, context %d, MLP %d%s%s%s: %lld parameters; "
            "%s: %lld tokens, vocabulary %d; %s lr %g %s, confidence penalty %g, %d steps of %d "
            "tokens%s\n",
            o->layers, o->heads, o->width, o->context, o->mlp, o->tied ? ", tied" : "",
            strcmp(o->gelu, "erf") ? "" : ", exact GELU",
            !strcmp(o->positions, "rope")     ? ", RoPE (no learned positions)"
            : strcmp(o->positions, "learned") ? ", RoPE"
                                              : "",
            (long long)oct_params_count(&m.params), path, (long long)text.n, text.vocab.size,
            kind == OCT_OPTIM_MUON ? "Muon+AdamW" : "AdamW", (double)o->lr, o->schedule,
            (double)o->penalty, o->steps, o->batch * o->context, origin);
    /* a resumed run's config record says so: "resumed_after", the steps done before */
    cli_log_write(&jl,
                  json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:I, "
                            "s:s, s:o*}",
                            "event", "config", "optim", o->optim, "text", path, "vocab",
                            text.vocab.size, "layers", o->layers, "heads", o->heads, "width",
                            o->width, "context", o->context, "mlp", o->mlp, "batch", o->batch, "lr",
                            (double)o->lr, "confidence_penalty", (double)o->penalty, "parameters",
                            (json_int_t)oct_params_count(&m.params), "positions", o->positions,
                            "resumed_after", o->resume ? json_integer(state.step) : NULL));
    bool stopped = false;
    if ((rc = train(&m, &opt, &sched, &text, o, &jl, &state, &stopped)) != CLI_OK) goto out;
    if (o->save && !stopped) {
        if (gpt_model_save(&m, o->save)) {
            rc = cli_fail(NULL);
            goto out;
        }
        printf("saved %s\n", o->save);
    }
out:
    if (cli_log_close(&jl) != CLI_OK && rc == CLI_OK) rc = CLI_FAIL; /* an incomplete log */
    oct_optim_free(&opt);
    gpt_model_free(&m);
    oct_text_free(&text);
    return rc;
}
