/* The QAT MLP: an oct_mlp's layers (same weights, same parameters) wrapped with quantizer
 * state, its quantized forward pass (one oct_qat_linear_forward per layer), observer freezing,
 * and the conversion to the deployed integer MLP (include/octet/int8.h) from exactly the state
 * the evaluation forward pass uses. */
#include "qat_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void oct__qat_state_push(oct__qat_state st, oct_tensor *t) {
    oct_tensor **s = realloc(*st.items, (size_t)(*st.n + 1) * sizeof *s);
    OCT_ALLOC_CHECK(s, (size_t)(*st.n + 1) * sizeof *s);
    *st.items = s;
    s[(*st.n)++] = t;
}

/* A named (1) tensor "<prefix>.<suffix>": a parameter (appended to params) or plain state. */
static oct_tensor *scalar(oct_arena *arena, oct_params *params, bool learned, const char *prefix,
                          const char *suffix, oct__qat_state st) {
    int one = 1;
    const char *name = oct_arena_printf(arena, "%s.%s", prefix, suffix);
    oct_tensor *t =
        learned ? oct_tensor_param(arena, name, 1, &one) : oct_tensor_zeros(arena, 1, &one);
    t->name = name;
    if (learned) oct_params_add(params, t);
    oct__qat_state_push(st, t);
    return t;
}

void oct__qat_act_init(oct_act_quant *a, const char *prefix, oct_qat_amode mode,
                       const oct_qat_config *cfg, oct_arena *arena, oct_params *params,
                       oct__qat_state st) {
    memset(a, 0, sizeof *a);
    a->mode = mode;
    oct_status s = oct_qscheme_init(&a->scheme, cfg->act_bits, false, false, false, false);
    OCT_ASSERT(s == OCT_OK); /* bits checked with the config */
    a->lo = scalar(arena, params, false, prefix, "lo", st);
    a->hi = scalar(arena, params, false, prefix, "hi", st);
    oct_observer_init(&a->obs, a->lo->data, a->hi->data, 1,
                      mode == OCT_QAT_A_EMA ? cfg->momentum : 0.0f);
    if (mode == OCT_QAT_A_LSQ) a->scale = scalar(arena, params, true, prefix, "scale", st);
    if (mode == OCT_QAT_A_PACT) a->alpha = scalar(arena, params, true, prefix, "alpha", st);
    if (mode == OCT_QAT_A_HIST)
        oct_histogram_init(&a->hist, oct_arena_alloc(arena, OCT_HIST_BINS * sizeof(double)));
    for (int k = 0; k < OCT_DP_MAX_SHARDS; k++) {
        a->shard_lo[k] = INFINITY;
        a->shard_hi[k] = -INFINITY;
    }
}

void oct__qat_linear_init(oct_qat_linear *l, const oct_linear_layer *fp, oct_act_quant *in_q,
                          bool owns_in, oct_act_quant *out_q, bool relu, const char *name,
                          const oct_qat_config *cfg, oct_arena *arena, oct_params *params,
                          oct__qat_state st) {
    memset(l, 0, sizeof *l);
    l->fp = fp;
    l->in_q = in_q;
    l->owns_in = owns_in;
    l->out_q = out_q;
    l->relu = relu;
    l->wmode = cfg->weight_mode;
    bool kmeans = l->wmode == OCT_QAT_W_KMEANS; /* codes anywhere in int8's range */
    int bits = oct_qat_config_weight_bits(cfg, name);
    oct_status s = oct_qscheme_init(&l->wscheme, kmeans ? 8 : bits, true, true, true, true);
    OCT_ASSERT(s == OCT_OK);
    l->wlevels = kmeans ? 1 << bits : 0;
    l->per_tensor = cfg->per_tensor_weights;
    if (l->wmode == OCT_QAT_W_POW2) { /* codes up to 2^e, e = 2^(bits-1) - 2: the scale maps the
                                         largest weight to it */
        l->wscheme.qmax = 1 << ((1 << (bits - 1)) - 2);
        l->wscheme.qmin = -l->wscheme.qmax;
    }
    l->threads = 1;
    if (l->wmode != OCT_QAT_W_LSQ) return;
    int out = fp->w->shape[0];
    l->wscale = oct_tensor_param(arena, oct_arena_printf(arena, "%s.wscale", name), 1, &out);
    oct_params_add(params, l->wscale);
    oct__qat_state_push(st, l->wscale);
}

void oct__qat_acts_sync_frozen(oct_act_quant *acts, int n, bool freeze) {
    for (int i = 0; i < n; i++) {
        oct_act_quant *a = &acts[i];
        bool frozen = a->mode == OCT_QAT_A_LSQ ? a->scale->data[0] != 0.0f : freeze;
        if (a->obs.frozen == frozen) continue;   /* no write in steady state */
        if (frozen && a->mode == OCT_QAT_A_HIST) /* calibration ends: the histogram's range */
            oct_histogram_range(&a->hist, &a->scheme, a->lo->data, a->hi->data);
        a->obs.frozen = frozen;
    }
}

/* OCT_EFORMAT unless t's values (a learned step or level) are finite. Training may leave one
 * below OCT_QUANT_MIN_SCALE, even negative: it is used as that floor. */
static oct_status check_learned(const oct_tensor *t) {
    for (int64_t i = 0; i < t->size; i++)
        if (!isfinite(t->data[i]))
            return oct_fail(OCT_EFORMAT,
                            "tensor '%s' holds %g at index %lld: a learned step is finite", t->name,
                            (double)t->data[i], (long long)i);
    return OCT_OK;
}

/* OCT_EFORMAT unless a's observed range is empty (+Inf, -Inf) or a valid one, and its learned
 * step or level is valid. */
static oct_status check_act(const oct_act_quant *a) {
    float lo = a->lo->data[0], hi = a->hi->data[0];
    bool empty = lo == INFINITY && hi == -INFINITY;
    bool lo_ok = fabsf(lo) <= OCT_QAT_MAX_RANGE, hi_ok = fabsf(hi) <= OCT_QAT_MAX_RANGE;
    /* the bound at fault: not lo when it is the empty range's and hi is wrong too */
    const oct_tensor *bad = !lo_ok && (lo != INFINITY || hi_ok) ? a->lo : !hi_ok ? a->hi : NULL;
    if (!empty && bad)
        return oct_fail(OCT_EFORMAT,
                        "tensor '%s' is %g: an observed range is finite and within +-2^64 (or "
                        "empty: lo inf, hi -inf)",
                        bad->name, (double)bad->data[0]);
    if (!empty && lo > hi)
        return oct_fail(OCT_EFORMAT, "tensors '%s' and '%s' hold the range [%g, %g], where lo > hi",
                        a->lo->name, a->hi->name, (double)lo, (double)hi);
    const oct_tensor *learned = a->scale ? a->scale : a->alpha;
    return learned ? check_learned(learned) : OCT_OK;
}

oct_status oct__qat_check_state(const oct_act_quant *acts, int n_acts, const oct_qat_linear *lin,
                                int n_lin) {
    oct_status s = OCT_OK;
    for (int i = 0; i < n_acts && s == OCT_OK; i++) s = check_act(&acts[i]);
    for (int j = 0; j < n_lin && s == OCT_OK; j++)
        if (lin[j].wscale) s = check_learned(lin[j].wscale);
    return s;
}

/* Raises t's values (learned steps or levels) that an optimizer step left below
 * OCT_QUANT_MIN_SCALE to it; 0 (not initialized yet) stays. */
static void project_learned(oct_tensor *t) {
    for (int64_t i = 0; i < t->size; i++)
        if (t->data[i] != 0.0f && !(t->data[i] >= OCT_QUANT_MIN_SCALE))
            t->data[i] = OCT_QUANT_MIN_SCALE;
}

void oct__qat_project_state(oct_act_quant *acts, int n_acts, oct_qat_linear *lin, int n_lin) {
    for (int i = 0; i < n_acts; i++) {
        oct_tensor *learned = acts[i].scale ? acts[i].scale : acts[i].alpha;
        if (learned) project_learned(learned);
    }
    for (int j = 0; j < n_lin; j++)
        if (lin[j].wscale) project_learned(lin[j].wscale);
}

void oct_qat_mlp_project(oct_qat_mlp *q) {
    oct__qat_project_state(q->acts, q->mlp->n_layers, q->layers, q->mlp->n_layers);
}

oct_status oct_qat_mlp_check(const oct_qat_mlp *q) {
    return oct__qat_check_state(q->acts, q->mlp->n_layers, q->layers, q->mlp->n_layers);
}

oct_status oct_qat_mlp_init(oct_qat_mlp *q, oct_mlp *mlp, oct_arena *arena, oct_params *params,
                            const oct_qat_config *cfg) {
    memset(q, 0, sizeof *q);
    oct_status st = oct_qat_config_check(cfg);
    if (st != OCT_OK) return st;
    int L = mlp->n_layers;
    if (cfg->embed_bits)
        return oct_fail(OCT_EINVAL, "qat: embed_bits %d, but an MLP has no embeddings",
                        cfg->embed_bits);
    if (mlp->act != OCT_ACT_RELU)
        return oct_fail(OCT_EINVAL,
                        "qat: the MLP must use relu (fused into the integer layer), "
                        "not %s",
                        oct_activation_name(mlp->act));
    if (cfg->n_act_modes > 1 && cfg->n_act_modes != L)
        return oct_fail(OCT_EINVAL,
                        "qat: activation quantizers: %d given, the MLP has %d quantization "
                        "points (input + hidden layers)",
                        cfg->n_act_modes, L);
    if (oct_qat_config_act_mode(cfg, 0) == OCT_QAT_A_PACT)
        return oct_fail(OCT_EINVAL, "qat: pact needs a ReLU input; use ema, minmax or lsq for "
                                    "the input (point 0)");
    for (int i = 0; i < L; i++)
        if (mlp->sizes[i] > OCT_I8_MAX_K)
            return oct_fail(OCT_EINVAL, "qat: layer %d has %d inputs, at most %d", i, mlp->sizes[i],
                            OCT_I8_MAX_K);
    const char **names = oct_arena_alloc(arena, (size_t)L * sizeof *names);
    for (int i = 0; i < L; i++) names[i] = oct_arena_printf(arena, "fc%d", i);
    if ((st = oct_qat_config_check_layers(cfg, names, L)) != OCT_OK) return st;
    q->mlp = mlp;
    q->cfg = *cfg;
    q->acts = oct_arena_alloc(arena, (size_t)L * sizeof *q->acts);
    q->layers = oct_arena_alloc(arena, (size_t)L * sizeof *q->layers);
    oct__qat_state state = {&q->state, &q->n_state};
    for (int i = 0; i < L; i++)
        oct__qat_act_init(&q->acts[i], oct_arena_printf(arena, "act%d", i),
                          oct_qat_config_act_mode(cfg, i), cfg, arena, params, state);
    for (int i = 0; i < L; i++)
        oct__qat_linear_init(&q->layers[i], &mlp->layers[i], &q->acts[i], i == 0,
                             i + 1 < L ? &q->acts[i + 1] : NULL, i + 1 < L, names[i], cfg, arena,
                             params, state);
    return OCT_OK;
}

void oct_qat_mlp_free(oct_qat_mlp *q) {
    if (!q) return;
    for (int i = 0; q->layers && i < q->mlp->n_layers; i++) oct_qat_linear_free(&q->layers[i]);
    free(q->state);
    memset(q, 0, sizeof *q);
}

void oct_qat_mlp_set_threads(oct_qat_mlp *q, int threads) {
    for (int i = 0; i < q->mlp->n_layers; i++) q->layers[i].threads = threads;
}

void oct_qat_mlp_sync_frozen(oct_qat_mlp *q) {
    oct__qat_acts_sync_frozen(q->acts, q->mlp->n_layers,
                              q->cfg.freeze_after > 0 && q->steps >= q->cfg.freeze_after);
}

bool oct_qat_mlp_needs_whole_batch(oct_qat_mlp *q) {
    oct_qat_mlp_sync_frozen(q);
    for (int i = 0; i < q->mlp->n_layers; i++)
        if (oct_qat_linear_needs_whole_batch(&q->layers[i])) return true;
    return false;
}

void oct_qat_mlp_commit(oct_qat_mlp *q) {
    for (int i = 0; i < q->mlp->n_layers; i++) oct_act_quant_commit(&q->acts[i]);
}

oct_tensor *oct_qat_mlp_forward(oct_qat_mlp *q, oct_graph *g, oct_tensor *x) {
    OCT_ASSERT(oct_tensor_cols(x) == q->mlp->sizes[0]);
    if (g->shard == 0) oct_qat_mlp_sync_frozen(q);
    oct_tensor *h = x;
    for (int i = 0; i < q->mlp->n_layers; i++) h = oct_qat_linear_forward(g, h, &q->layers[i]);
    if (g->training && g->shard == 0) q->steps++;
    return h;
}

oct_status oct_qat_mlp_to_int8(const oct_qat_mlp *q, float in_mean, float in_std, oct_i8_mlp *out) {
    int L = q->mlp->n_layers;
    memset(out, 0, sizeof *out);
    oct_qlinear *layers = calloc((size_t)L, sizeof *layers);
    if (!layers) return oct_fail(OCT_ENOMEM, "qat: out of memory exporting %d layers", L);
    for (int i = 0; i < L; i++) {
        oct_status st = oct_qat_linear_build(&q->layers[i], &layers[i]);
        if (st == OCT_OK) continue;
        for (int j = 0; j <= i; j++) oct_qlinear_free(&layers[j]);
        free(layers);
        return st;
    }
    out->n_layers = L;
    out->layers = layers;
    out->in_mean = in_mean;
    out->in_std = in_std;
    out->in_qmin = q->acts[0].scheme.qmin;
    out->in_qmax = q->acts[0].scheme.qmax;
    return OCT_OK;
}

oct_status oct_mlp_to_dynamic_int8(const oct_mlp *m, float in_mean, float in_std, oct_i8_mlp *out) {
    int L = m->n_layers;
    memset(out, 0, sizeof *out);
    if (L > 1 && m->act != OCT_ACT_RELU)
        return oct_fail(OCT_EINVAL, "mlp: dynamic int8 needs ReLU between the layers");
    out->layers = calloc((size_t)L, sizeof *out->layers);
    if (!out->layers) return oct_fail(OCT_ENOMEM, "mlp: out of memory exporting %d layers", L);
    out->n_layers = L;
    out->dynamic = true;
    out->in_mean = in_mean;
    out->in_std = in_std;
    out->in_qmax = 255;
    oct_status s = OCT_OK;
    for (int i = 0; i < L && s == OCT_OK; i++) {
        const oct_linear_layer *l = &m->layers[i];
        s = oct_qlinear_build_dynamic(&out->layers[i], m->sizes[i + 1], m->sizes[i], l->w->data,
                                      l->b ? l->b->data : NULL, i < L - 1);
    }
    if (s != OCT_OK) oct_i8_mlp_free(out);
    return s;
}
