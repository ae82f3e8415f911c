/* Optimizers: SGD (momentum, Nesterov, coupled L2), AdamW (decoupled weight decay) and Muon
 * (its matrix part in muon.c), with PyTorch's update rules. Each update is one flat loop over a
 * tensor's elements in float32 so that gcc vectorizes it; the per-step scalars (bias corrections)
 * are computed in double once. State tensors live in the caller's model arena under
 * "<param>.<suffix>" names, for checkpoints. */
#include "optim_internal.h"

#include <math.h>
#include <string.h>

#include "../core/clones.h"

static const char *const kind_names[] = {
    [OCT_OPTIM_SGD] = "sgd",
    [OCT_OPTIM_ADAMW] = "adamw",
    [OCT_OPTIM_MUON] = "muon",
};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == OCT_OPTIM_COUNT, "optimizer names");

const char *oct_optim_kind_name(oct_optim_kind kind) {
    return (unsigned)kind < OCT_OPTIM_COUNT ? kind_names[kind] : "?";
}

oct_status oct_optim_kind_parse(const char *name, oct_optim_kind *out) {
    for (int i = 0; i < OCT_OPTIM_COUNT; i++)
        if (strcmp(kind_names[i], name) == 0) {
            *out = (oct_optim_kind)i;
            return OCT_OK;
        }
    return oct_fail(OCT_EINVAL, "optimizer '%s': expected sgd, adamw or muon", name);
}

oct_optim_hyper oct_optim_defaults(oct_optim_kind kind) {
    oct_optim_hyper h = {0};
    h.beta1 = 0.9f;
    h.beta2 = 0.999f;
    h.eps = 1e-8f;
    h.weight_decay = kind == OCT_OPTIM_ADAMW ? 0.01f : kind == OCT_OPTIM_MUON ? 0.1f : 0.0f;
    if (kind == OCT_OPTIM_MUON) {
        h.momentum = 0.95f;
        h.nesterov = true;
    }
    return h;
}

static oct_status check_hyper(oct_optim_kind kind, const oct_optim_hyper *h) {
    if ((unsigned)kind >= OCT_OPTIM_COUNT)
        return oct_fail(OCT_EINVAL, "optimizer kind %d out of range", (int)kind);
    if (!(h->weight_decay >= 0.0f))
        return oct_fail(OCT_EINVAL, "weight decay %g: expected >= 0", h->weight_decay);
    if (kind != OCT_OPTIM_ADAMW) {
        const char *name = kind_names[kind];
        if (!(h->momentum >= 0.0f && h->momentum < 1.0f))
            return oct_fail(OCT_EINVAL, "%s momentum %g: expected in [0, 1)", name, h->momentum);
        if (h->nesterov && h->momentum == 0.0f)
            return oct_fail(OCT_EINVAL, "%s: nesterov needs momentum > 0", name);
    }
    if (h->momentum_warmup < 0 || (h->momentum_warmup > 0 && kind != OCT_OPTIM_MUON))
        return oct_fail(OCT_EINVAL, "momentum warmup %lld: expected >= 0, and 0 unless muon",
                        (long long)h->momentum_warmup);
    if (kind != OCT_OPTIM_SGD) {
        if (!(h->beta1 >= 0.0f && h->beta1 < 1.0f))
            return oct_fail(OCT_EINVAL, "adamw beta1 %g: expected in [0, 1)", h->beta1);
        if (!(h->beta2 >= 0.0f && h->beta2 < 1.0f))
            return oct_fail(OCT_EINVAL, "adamw beta2 %g: expected in [0, 1)", h->beta2);
        if (!(h->eps > 0.0f)) return oct_fail(OCT_EINVAL, "adamw eps %g: expected > 0", h->eps);
    }
    return OCT_OK;
}

/* State slots per parameter: Adam's m and v (Muon: its momentum and NULL for a matrix it
 * orthogonalizes), SGD's momentum buffer, or none. */
static int state_per_param(oct_optim_kind kind, const oct_optim_hyper *h) {
    return kind != OCT_OPTIM_SGD ? 2 : h->momentum > 0.0f ? 1 : 0;
}

/* A zeroed state tensor shaped like p, named "<p's name>.<suffix>", in arena. */
static oct_tensor *state_like(oct_arena *arena, const oct_tensor *p, const char *suffix) {
    oct_tensor *t = oct_tensor_zeros(arena, p->ndim, p->shape);
    t->name = oct_arena_printf(arena, "%s.%s", p->name, suffix);
    return t;
}

oct_status oct_optim_init(oct_optim *o, oct_optim_kind kind, const oct_params *params,
                          oct_arena *arena, const oct_optim_hyper *h) {
    memset(o, 0, sizeof *o);
    oct_status st = check_hyper(kind, h);
    if (st) return st;
    o->kind = kind;
    o->h = *h;
    o->params = params;
    o->n_state = state_per_param(kind, h) * params->n;
    if (o->n_state == 0) return OCT_OK;
    o->state = malloc((size_t)o->n_state * sizeof *o->state);
    OCT_ALLOC_CHECK(o->state, (size_t)o->n_state * sizeof *o->state);
    for (int i = 0; i < params->n; i++) {
        const oct_tensor *p = params->items[i];
        OCT_ASSERT(p->name != NULL);
        int blocks = kind == OCT_OPTIM_MUON ? oct__muon_blocks(h, p) : 0;
        if (blocks < 0 || (blocks > 0 && p->shape[0] % blocks != 0)) {
            oct_optim_free(o);
            return oct_fail(OCT_EINVAL, "muon: cannot split %s (%d rows) into %d row blocks",
                            p->name, p->shape[0], blocks);
        }
        if (blocks > 0) {
            o->state[2 * i] = state_like(arena, p, "muon_m");
            o->state[2 * i + 1] = NULL;
        } else if (kind != OCT_OPTIM_SGD) {
            o->state[2 * i] = state_like(arena, p, "adam_m");
            o->state[2 * i + 1] = state_like(arena, p, "adam_v");
        } else {
            o->state[i] = state_like(arena, p, "momentum");
        }
    }
    if (kind == OCT_OPTIM_MUON && oct__muon_alloc(o) != OCT_OK) {
        oct_optim_free(o);
        return oct_fail(OCT_ENOMEM, "muon: out of memory for the orthogonalization workspace");
    }
    return OCT_OK;
}

void oct_optim_free(oct_optim *o) {
    if (!o) return;
    free(o->state);
    free(o->muon_which);
    free(o->muon_off);
    free(o->muon_work);
    memset(o, 0, sizeof *o);
}

/* SGD without momentum: p -= lr * (g + wd p). */
static void sgd_plain(float *restrict p,       /* (n) */
                      const float *restrict g, /* (n) */
                      int64_t n, float lr, float wd) {
    for (int64_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
}

/* SGD with momentum: buf = mu buf + d, p -= lr * (nesterov ? d + mu buf : buf), d = g + wd p. */
static void sgd_momentum(float *restrict p,       /* (n) */
                         const float *restrict g, /* (n) */
                         float *restrict buf,     /* (n) */
                         int64_t n, float lr, float wd, float mu, bool nesterov) {
    if (nesterov) {
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            buf[i] = mu * buf[i] + d;
            p[i] -= lr * (d + mu * buf[i]);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            buf[i] = mu * buf[i] + (g[i] + wd * p[i]);
            p[i] -= lr * buf[i];
        }
    }
}

/* Per-step scalars of an AdamW update, in float32 as PyTorch passes them to its kernels. */
typedef struct adamw_scalars {
    float decay;  /* 1 - lr * wd */
    float c1, c2; /* 1 - beta1, 1 - beta2 */
    float beta2;
    float step_size; /* lr / (1 - beta1^t) */
    float bc2_sqrt;  /* sqrt(1 - beta2^t) */
    float eps;
} adamw_scalars;

/* Vectorizes only when sqrtf need not set errno: build with -fno-math-errno (v >= 0 here).
 * Wider clones are picked at run time (core/clones.h), with the baseline's results. */
OCT_CLONES static void adamw_update(float *restrict p,       /* (n) */
                                    const float *restrict g, /* (n) */
                                    float *restrict m,       /* (n) */
                                    float *restrict v,       /* (n) */
                                    int64_t n, adamw_scalars s) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        m[i] += s.c1 * (gi - m[i]);
        v[i] = v[i] * s.beta2 + s.c2 * gi * gi;
        p[i] = p[i] * s.decay - s.step_size * (m[i] / (sqrtf(v[i]) / s.bc2_sqrt + s.eps));
    }
}

typedef struct step_job {
    oct_optim *o;
    float lr, mu; /* mu: Muon's momentum at this step */
    adamw_scalars s;
    int per_param;
    int parts;
} step_job;

/* Slice `part` of `parts` of every tensor: the updates are elementwise, so slices are
 * independent and the result does not depend on how the work is split. */
static void step_slice(void *arg, int part) {
    const step_job *j = arg;
    const oct_optim *o = j->o;
    const oct_params *ps = o->params;
    const oct_optim_hyper *h = &o->h;
    adamw_scalars s = j->s;
    for (int i = 0; i < ps->n; i++) {
        oct_tensor *p = ps->items[i];
        int64_t lo = p->size * part / j->parts, n = p->size * (part + 1) / j->parts - lo;
        for (int e = 0; e < o->n_extra; e++) { /* the shards' gradients, in a fixed order */
            float *src = o->extra[e][i] + lo, *dst = p->grad + lo;
            for (int64_t k = 0; k < n; k++) dst[k] += src[k];
            memset(src, 0, (size_t)n * sizeof *src);
        }
        float wd = h->no_decay_1d && p->ndim == 1 ? 0.0f : h->weight_decay;
        if (o->kind == OCT_OPTIM_MUON && o->state[2 * i + 1] == NULL) {
            oct__muon_momentum(o->state[2 * i]->data + lo, p->grad + lo, n, j->mu);
        } else if (o->kind != OCT_OPTIM_SGD) {
            s.decay = (float)(1.0 - (double)j->lr * wd);
            adamw_update(p->data + lo, p->grad + lo, o->state[2 * i]->data + lo,
                         o->state[2 * i + 1]->data + lo, n, s);
        } else if (j->per_param == 1) {
            sgd_momentum(p->data + lo, p->grad + lo, o->state[i]->data + lo, n, j->lr, wd,
                         h->momentum, h->nesterov);
        } else {
            sgd_plain(p->data + lo, p->grad + lo, n, j->lr, wd);
        }
    }
}

void oct_optim_step(oct_optim *o, float lr) {
    const oct_params *ps = o->params;
    const oct_optim_hyper *h = &o->h;
    int per_param = state_per_param(o->kind, h);
    OCT_ASSERT(o->n_state == per_param * ps->n); /* the list changed after init */
    for (int i = 0; i < ps->n; i++) OCT_ASSERT(ps->items[i]->grad != NULL);
    double t = (double)(o->step + 1);
    step_job j = {
        .o = o,
        .lr = lr,
        .mu = oct__muon_momentum_at(h, o->step),
        .s =
            {
                .c1 = (float)(1.0 - (double)h->beta1),
                .c2 = (float)(1.0 - (double)h->beta2),
                .beta2 = h->beta2,
                .step_size = (float)((double)lr / (1.0 - pow(h->beta1, t))),
                .bc2_sqrt = (float)sqrt(1.0 - pow(h->beta2, t)),
                .eps = h->eps,
            },
        .per_param = per_param,
        .parts = o->threads > 1 ? o->threads : 1,
    };
    oct_parallel_for(j.parts, j.parts, step_slice, &j);
    if (o->kind == OCT_OPTIM_MUON) oct__muon_step(o, lr, j.mu);
    o->step++;
}
