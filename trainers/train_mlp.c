/* `octet train mlp`: trains an MLP classifier on an IDX image set (Fashion-MNIST by default),
 * reports test accuracy every epoch, logs metrics as JSON Lines and saves the model: fp32, or
 * with --qat quantization-aware (the recipe lives in qat_mlp.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "mlp_model.h"
#include "qat_mlp.h"
#include "octet/nn.h"
#include "octet/optim.h"

typedef struct mlp_opts {
    cli_ints hidden;
    const char *activation, *init, *optim, *schedule, *data, *log, *save;
    int epochs, batch, seed, threads, warmup, limit;
    float lr, wd, momentum, min_lr, clip, dropout;
    float penalty; /* --confidence-penalty */
    bool nesterov;
    qat_opts qat;
} mlp_opts;

/* The test set must match the training images' size and its labels the training classes. The
 * training set gets the normalization of its pixels' mean and standard deviation, rounded to 4
 * decimals (Fashion-MNIST's 0.2860/0.3530, MNIST's 0.1307/0.3081), which the model keeps and
 * evaluation applies to the test set (mlp_model_evaluate). */
static int check_data(oct_image_set *train, oct_image_set *test, const char *dir) {
    if (test->rows != train->rows || test->cols != train->cols) {
        fprintf(stderr,
                "octet train mlp: %s: the test images are %dx%d, the training images %dx%d\n", dir,
                test->rows, test->cols, train->rows, train->cols);
        return CLI_FAIL;
    }
    if (test->n_classes > train->n_classes) {
        fprintf(stderr,
                "octet train mlp: %s: the test labels go up to %d, the training labels to %d\n",
                dir, test->n_classes - 1, train->n_classes - 1);
        return CLI_FAIL;
    }
    float mean, std;
    oct_image_set_stats(train, &mean, &std);
    mean = roundf(mean * 1e4f) / 1e4f;
    std = roundf(std * 1e4f) / 1e4f;
    if (!(std > 0.0f)) {
        fprintf(stderr, "octet train mlp: %s: the training pixels are all (nearly) equal\n", dir);
        return CLI_FAIL;
    }
    train->mean = mean;
    train->std = std;
    return CLI_OK;
}

static int fail_flag(const char *flag) {
    fprintf(stderr, "octet train mlp: %s: %s\n", flag, oct_last_error());
    return CLI_USAGE;
}

/* One minibatch, shared by the shards of a data-parallel step. */
typedef struct batch_ctx {
    mlp_model *m;
    const oct_image_set *set;
    const int32_t *idx;
    int n;
    float penalty; /* --confidence-penalty */
} batch_ctx;

/* Forward and backward of this shard's rows; returns the shard's cross-entropy (without the
 * confidence penalty), like the objective weighted by the shard's share. */
static float train_shard(void *arg, oct_graph *g, int shard, int shards) {
    const batch_ctx *b = arg;
    int lo, hi, in = b->m->mlp.sizes[0];
    oct_dp_range(b->n, shard, shards, &lo, &hi);
    if (hi == lo) return 0.0f; /* a last batch smaller than the shards: no images here */
    oct_tensor *x = oct_tensor_new2(&g->arena, hi - lo, in);
    int32_t *y = oct_arena_alloc(&g->arena, (size_t)(hi - lo) * sizeof *y);
    oct_image_set_batch(b->set, b->idx + lo, hi - lo, x->data, y);
    float ce, share = (float)(hi - lo) / (float)b->n;
    oct_tensor *loss =
        oct_cross_entropy_penalized(g, mlp_model_forward(b->m, g, x), y, b->penalty, &ce);
    oct_graph_backward(g, oct_scale(g, loss, share));
    return ce * share;
}

/* One epoch over the training set; returns the mean training loss. Steps are data parallel
 * over the threads, except the first QAT step (observers without a range yet, LSQ and PACT
 * initialization), which runs on one graph with threaded int8 GEMMs and OpenBLAS. In
 * data-parallel QAT steps the observers update after the step from the shards' ranges. */
static double train_epoch(mlp_model *m, oct_dp *dp_fp32, oct_dp *dp_qat, oct_optim *opt,
                          const oct_schedule *sched, const oct_image_set *train,
                          oct_batcher *batcher, int epoch, const mlp_opts *o, cli_progress *bar) {
    const int32_t *idx;
    int count;
    double loss_sum = 0;
    int64_t steps = 0, seen = 0;
    int64_t per_epoch = oct_batcher_batches_per_epoch(batcher);
    char label[32];
    snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, o->epochs);
    cli_progress_begin(bar, label, per_epoch, "samples/s");
    while (oct_batcher_next(batcher, &idx, &count)) {
        batch_ctx b = {m, train, idx, count, o->penalty};
        bool whole = m->qat_on && oct_qat_mlp_needs_whole_batch(m->qat);
        if (whole) cli_set_threads(o->threads); /* data-parallel steps use 1 per shard */
        float loss = oct_dp_step(whole ? dp_qat : dp_fp32, train_shard, &b);
        if (!isfinite(loss)) { /* diverged: the caller says so */
            cli_progress_end(bar);
            return loss;
        }
        if (m->qat_on) oct_qat_mlp_commit(m->qat); /* the shards' observed ranges */
        if (o->clip > 0) oct_clip_grad_norm(&m->params, o->clip);
        oct_optim_step(opt, oct_lr_at(sched, opt->step));
        if (m->qat_on) oct_qat_mlp_project(m->qat); /* learned steps stay positive */
        loss_sum += loss;
        steps++;
        seen += count;
        cli_progress_update(bar, steps, loss, (double)seen);
    }
    cli_progress_end(bar);
    return steps ? loss_sum / (double)steps : 0;
}

/* The model to train: with --from the saved one, whose input must be the data's images and whose
 * outputs must cover its classes (it keeps its own normalization), else a fresh one of the flags'
 * layers with the training set's normalization. */
static int make_model(mlp_model *m, const mlp_opts *o, oct_image_set *train, oct_activation act,
                      oct_init init) {
    if (o->qat.from) {
        int in = train->rows * train->cols, classes = m->mlp.sizes[m->mlp.n_layers];
        if (m->mlp.sizes[0] != in || classes < train->n_classes) {
            fprintf(stderr,
                    "octet train mlp: --from %s: the model takes %d inputs for %d classes, the "
                    "images in %s have %d pixels and %d classes\n",
                    o->qat.from, m->mlp.sizes[0], classes, o->data, in, train->n_classes);
            return CLI_FAIL;
        }
        train->mean = m->mean;
        train->std = m->std;
    } else {
        int sizes[CLI_MAX_INTS + 2], n = 0;
        sizes[n++] = train->rows * train->cols;
        for (int i = 0; i < o->hidden.n; i++) sizes[n++] = o->hidden.v[i];
        sizes[n++] = train->n_classes;
        if (mlp_model_init(m, sizes, n, act, init, (uint64_t)o->seed)) return cli_fail(NULL);
        m->mean = train->mean;
        m->std = train->std;
    }
    m->mlp.dropout = o->dropout;
    return CLI_OK;
}

/* The --log file's first record: the run's model, data, recipe and quantizers. */
static json_t *config_event(const mlp_model *m, const mlp_opts *o, int64_t images, int qat_start) {
    json_t *sizes = json_array();
    for (int i = 0; i <= m->mlp.n_layers; i++)
        json_array_append_new(sizes, json_integer(m->mlp.sizes[i]));
    char *cfg = m->qat ? oct_qat_config_to_json(&m->qat->cfg) : NULL;
    json_t *qat = cfg ? json_loads(cfg, 0, NULL) : NULL;
    free(cfg);
    return json_pack("{s:s, s:o, s:s, s:s?, s:s, s:s, s:f, s:f, s:f, s:i, s:i, s:I, s:I, s:b, "
                     "s:i, s:o, s:i, s:s}",
                     "event", "config", "sizes", sizes, "activation",
                     oct_activation_name(m->mlp.act), "from", o->qat.from, "data", o->data, "optim",
                     o->optim, "lr", (double)o->lr, "wd", (double)o->wd, "confidence_penalty",
                     (double)o->penalty, "batch", o->batch, "epochs", o->epochs, "training_images",
                     (json_int_t)images, "parameters", (json_int_t)oct_params_count(&m->params),
                     "qat", m->qat != NULL, "fp32_epochs", m->qat ? qat_start : o->epochs,
                     "qat_config", qat ? qat : json_null(), "threads", o->threads, "openblas_core",
                     cli_blas_core());
}

static int run(mlp_opts *o) {
    oct_activation act;
    oct_init init;
    oct_optim_kind kind;
    oct_schedule sched = {0};
    if (oct_activation_parse(o->activation, &act)) return fail_flag("--activation");
    if (oct_init_parse(o->init, &init)) return fail_flag("--init");
    bool adam = !strcmp(o->optim, "adam");
    if (adam)
        kind = OCT_OPTIM_ADAMW;
    else if (oct_optim_kind_parse(o->optim, &kind))
        return fail_flag("--optim");
    if (kind == OCT_OPTIM_MUON) {
        fprintf(stderr, "octet train mlp: --optim muon: only for `octet train gpt` (expected adam, "
                        "adamw or sgd)\n");
        return CLI_USAGE;
    }
    if (oct_schedule_kind_parse(o->schedule, &sched.kind)) return fail_flag("--schedule");
    if (cli_check_output("--save", o->save) || cli_check_log(o->log)) return CLI_FAIL;
    int bad = cli_check_not_input("--save", o->save, "--from", o->qat.from, NULL);
    if (!bad)
        bad = cli_check_not_input("--log", o->log, "--from", o->qat.from, "--save", o->save, NULL);
    if (!bad) bad = cli_check_not_data("--save", o->save, o->data);
    if (!bad) bad = cli_check_not_data("--log", o->log, o->data);
    if (bad) return bad;

    mlp_model m = {0};
    oct_image_set train = {0}, test = {0};
    oct_rng rng;
    oct_rng_seed(&rng, (uint64_t)o->seed, 2);
    oct_batcher batcher = {0};
    oct_optim opt = {0};
    oct_graph g;
    oct_graph_init(&g, 0, (uint64_t)o->seed);
    oct_dp dp_fp32 = {0}, dp_qat = {0};
    cli_log log = {0};
    int qat_start, rc = CLI_OK;
    if (o->qat.from && (rc = qat_load_from(&o->qat, &m)) != CLI_OK) goto out;
    if (oct_image_set_load_dir(&train, o->data, true) ||
        oct_image_set_load_dir(&test, o->data, false)) {
        rc = cli_fail(NULL);
        goto out;
    }
    if ((rc = check_data(&train, &test, o->data)) != CLI_OK) goto out;
    if (o->limit > 0 && o->limit < train.n) train.n = o->limit;
    cli_set_threads(o->threads);
    if ((rc = make_model(&m, o, &train, act, init)) != CLI_OK) goto out;
    free(m.source); /* the model records the data it is trained on now */
    m.source = cli_source_record(o->data);
    oct_optim_hyper h = oct_optim_defaults(kind);
    h.weight_decay = o->wd;
    h.momentum = o->momentum;
    h.nesterov = o->nesterov;
    if (oct_batcher_init(&batcher, train.n, o->batch, false, &rng)) {
        rc = cli_fail(NULL);
        goto out;
    }
    if ((rc = qat_setup(&o->qat, &m, oct_batcher_batches_per_epoch(&batcher), o->threads,
                        &qat_start)) != CLI_OK)
        goto out;
    int shards = o->threads < OCT_DP_MAX_SHARDS ? o->threads : OCT_DP_MAX_SHARDS;
    if (oct_dp_init(&dp_fp32, &m.params, shards, (uint64_t)o->seed) ||
        oct_dp_init(&dp_qat, &m.params, 1, (uint64_t)o->seed) ||
        oct_optim_init(&opt, kind, &m.params, &m.arena, &h)) {
        rc = cli_fail(NULL);
        goto out;
    }
    opt.threads = shards;
    /* Without clipping, AdamW/SGD add the shards' gradients as they update. */
    dp_fp32.defer_reduce = o->clip <= 0;
    if (dp_fp32.defer_reduce) {
        opt.extra = (float *const *const *)&dp_fp32.grads[1];
        opt.n_extra = shards - 1;
    }
    sched.lr = o->lr;
    sched.warmup = o->warmup;
    sched.total = oct_batcher_batches_per_epoch(&batcher) * o->epochs;
    sched.min_ratio = o->min_lr;
    sched.step_size = oct_batcher_batches_per_epoch(&batcher);
    sched.gamma = 0.5f;
    if (sched.warmup >= sched.total) {
        fprintf(stderr, "octet train mlp: --warmup %d: expected fewer than the run's %lld steps\n",
                o->warmup, (long long)sched.total);
        rc = CLI_USAGE;
        goto out;
    }
    if (oct_schedule_check(&sched)) {
        rc = fail_flag("--schedule");
        goto out;
    }
    if ((rc = cli_log_open(&log, o->log, false)) != CLI_OK) goto out;
    fprintf(stderr,
            "octet: MLP %s, %lld parameters, %lld training images, %s lr %g %s, %d thread%s, "
            "OpenBLAS core %s%s%s\n",
            oct_activation_name(m.mlp.act), (long long)oct_params_count(&m.params),
            (long long)train.n, adam ? "adam" : oct_optim_kind_name(kind), (double)o->lr,
            o->schedule, o->threads, o->threads == 1 ? "" : "s", cli_blas_core(),
            o->qat.from ? "; fine-tuning " : "", o->qat.from ? o->qat.from : "");
    cli_log_write(&log, config_event(&m, o, train.n, qat_start));
    cli_progress bar;
    double t_train = 0;
    mlp_eval ev = {0};
    for (int e = 0; e < o->epochs; e++) {
        qat_begin_epoch(&m, e, qat_start, ev.accuracy);
        double t0 = cli_now();
        double loss =
            train_epoch(&m, &dp_fp32, &dp_qat, &opt, &sched, &train, &batcher, e, o, &bar);
        double dt = cli_now() - t0;
        t_train += dt;
        char where[32];
        snprintf(where, sizeof where, "in epoch %d", e + 1);
        if ((rc = cli_check_diverged(&m.params, loss, where)) != CLI_OK) goto out;
        ev = mlp_model_evaluate(&m, &g, &test);
        printf("epoch %d/%d  %s  train loss %.4f  test loss %.4f  test accuracy %.2f%%  (%.2f s, "
               "%.0f samples/s)\n",
               e + 1, o->epochs, m.qat_on ? "qat " : "fp32", loss, ev.loss, 100 * ev.accuracy, dt,
               (double)train.n / dt);
        fflush(stdout);
        cli_log_write(&log, json_pack("{s:s, s:i, s:b, s:f, s:f, s:f, s:f, s:f}", "event", "epoch",
                                      "epoch", e + 1, "qat", m.qat_on, "train_loss", loss,
                                      "test_loss", ev.loss, "test_accuracy", ev.accuracy, "seconds",
                                      dt, "lr", (double)oct_lr_at(&sched, opt.step)));
    }
    char label[96] = "fp32";
    if (m.qat_on) cli_qat_label(&m.qat->cfg, label, sizeof label);
    printf("%s test accuracy %.2f%% after %d epoch%s (%.1f s training)\n", label, 100 * ev.accuracy,
           o->epochs, o->epochs == 1 ? "" : "s", t_train);
    if (o->save) {
        if (mlp_model_save(&m, o->save)) {
            rc = cli_fail(NULL);
            goto out;
        }
        printf("saved %s\n", o->save);
    }
out:
    if (cli_log_close(&log) != CLI_OK && rc == CLI_OK) rc = CLI_FAIL; /* an incomplete log */
    oct_dp_free(&dp_fp32);
    oct_dp_free(&dp_qat);
    oct_graph_free(&g);
    oct_optim_free(&opt);
    oct_batcher_free(&batcher);
    mlp_model_free(&m);
    oct_image_set_free(&train);
    oct_image_set_free(&test);
    return rc;
}

/* With --from the model's layers, activation and weights come from the file: their flags are
 * errors. */
static int check_from(const mlp_opts *o, const cli_cmd *cmd, const bool *seen) {
    static const char *const model[] = {"--hidden", "--activation", "--init"};
    const char *a = o->qat.from ? cli_first_given(cmd, seen, model, 3) : NULL;
    if (!a) return CLI_OK;
    fprintf(stderr, "octet train mlp: %s: the %s from --from %s\n", a,
            strcmp(a, "--init") ? "architecture comes" : "weights come", o->qat.from);
    return CLI_USAGE;
}

int cmd_train_mlp(int argc, char **argv) {
    mlp_opts o = {
        .hidden = {2, {256, 128}},
        .activation = "relu",
        .init = "kaiming_uniform",
        .optim = "adam",
        .schedule = "cosine",
        .data = OCT_FASHION_MNIST_DIR,
        .epochs = 10,
        .batch = 128,
        .seed = 1,
        .threads = 1,
        .lr = 1e-3f,
        .momentum = 0.9f,
        .qat = QAT_OPTS_DEFAULT,
    };
    enum { N_BASE = 22 }; /* the rows below; the --qat rows follow them */
    cli_flag flags[N_BASE + QAT_N_FLAGS] = {
        {"--hidden", CLI_INTS, &o.hidden, "hidden layer sizes (not with --from: the model's own)",
         1, 65536},
        {"--activation", CLI_STR, &o.activation,
         "relu, gelu, tanh or none (not with --from: the model's own)", 0, 0},
        {"--init", CLI_STR, &o.init,
         "kaiming_uniform, kaiming_normal or xavier_uniform (not with --from)", 0, 0},
        {"--epochs", CLI_INT, &o.epochs, "training epochs", 1, 100000},
        {"--batch", CLI_INT, &o.batch, "minibatch size", 1, 65536},
        {"--optim", CLI_STR, &o.optim, "adam, adamw or sgd", 0, 0},
        {"--lr", CLI_FLOAT, &o.lr, "peak learning rate", 1e-9, 10},
        {"--schedule", CLI_STR, &o.schedule,
         "constant, step (halve every epoch), cosine, or linear (straight down to --min-lr)", 0, 0},
        {"--warmup", CLI_INT, &o.warmup, "linear warmup steps", 0, 1e9},
        {"--min-lr", CLI_FLOAT, &o.min_lr, "cosine, linear: final lr as a fraction of --lr", 0, 1},
        {"--wd", CLI_FLOAT, &o.wd, "weight decay (adamw: 0.01 unless given)", 0, 10},
        {"--momentum", CLI_FLOAT, &o.momentum, "sgd momentum", 0, 0.999},
        {"--nesterov", CLI_BOOL, &o.nesterov, "sgd: Nesterov momentum", 0, 0},
        {"--clip", CLI_FLOAT, &o.clip, "clip the global gradient norm (0: off)", 0, 1e9},
        {"--confidence-penalty", CLI_FLOAT, &o.penalty, CLI_PENALTY_HELP, 0, 10},
        {"--dropout", CLI_FLOAT, &o.dropout, "dropout after hidden activations", 0, 0.99},
        {"--seed", CLI_INT, &o.seed, "random seed (init, shuffling, dropout)", 0, 2147483647},
        {"--threads", CLI_INT, &o.threads, "threads", 1, 256},
        {"--data", CLI_STR, &o.data,
         "directory with the IDX files (gzip'ed or not; unset with --from: the model's own)", 0, 0},
        {"--limit", CLI_INT, &o.limit, "use only the first N training images (0: all)", 0, 1e9},
        {"--log", CLI_STR, &o.log, "write per-epoch metrics as JSON Lines to FILE", 0, 0},
        {"--save", CLI_STR, &o.save, "save the trained model (safetensors) to FILE", 0, 0},
    };
    OCT_ASSERT(!strcmp(flags[N_BASE - 1].name, "--save") && !flags[N_BASE].name);
    qat_flags(&o.qat, &flags[N_BASE]);
    cli_cmd cmd = {"train mlp",
                   "[flags]",
                   "Trains an MLP classifier on Fashion-MNIST (or any IDX image set given with\n"
                   "--data) and prints the test accuracy after every epoch. With --qat: fp32\n"
                   "warm-up epochs, then quantization-aware epochs whose forward pass runs the\n"
                   "int8 integer layers that 'octet export' deploys bit-exactly.",
                   flags,
                   (int)(sizeof flags / sizeof flags[0]),
                   0,
                   0};
    const char *pos[1];
    bool seen[sizeof flags / sizeof flags[0]] = {false};
    int n_pos, rc = cli_parse_seen(&cmd, argc, argv, pos, &n_pos, seen);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    if ((rc = qat_check(&o.qat, &cmd, seen, o.epochs)) != CLI_OK ||
        (rc = check_from(&o, &cmd, seen)) != CLI_OK)
        return rc;
    if (!cli_given(&cmd, seen, "--wd") && !strcmp(o.optim, "adamw")) o.wd = 0.01f;
    /* without --data, a saved model goes on with the data it records */
    char *recorded = NULL;
    if (o.qat.from && !cli_given(&cmd, seen, "--data") &&
        cli_file_source(o.qat.from, "--data", &recorded))
        return CLI_FAIL;
    if (recorded) o.data = recorded;
    rc = run(&o);
    free(recorded);
    return rc;
}
