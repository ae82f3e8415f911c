/* Optimizers, learning-rate schedules and gradient clipping.
 *
 * An optimizer steps over an oct_params list after backward. Its state (momentum buffers,
 * Adam moments) lives in the model arena as named tensors ("fc0.weight.adam_m") so that
 * checkpoints can save and restore it next to the parameters. A training step reads:
 *
 *     oct_params_zero_grad(&params);
 *     loss = ...forward...; oct_graph_backward(&g, loss);
 *     double norm = oct_clip_grad_norm(&params, 1.0f);
 *     oct_optim_step(&opt, oct_lr_at(&sched, opt.step));
 *
 * Update rules follow PyTorch's torch.optim.SGD (dampening 0), torch.optim.AdamW and
 * torch.optim.Muon (with adjust_lr_fn="match_rms_adamw", so one lr serves both of its halves).
 */
#ifndef OCTET_OPTIM_H
#define OCTET_OPTIM_H

#include "octet/tensor.h"

/* ---- optimizers ----------------------------------------------------------------------------- */

typedef enum {
    /* g += wd * p (coupled L2); buf = momentum * buf + g; g = nesterov ? g + momentum * buf : buf
     * (plain g without momentum); p -= lr * g. */
    OCT_OPTIM_SGD,
    /* p *= 1 - lr * wd (decoupled); m += (1 - b1)(g - m); v = b2 v + (1 - b2) g^2;
     * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). Adam is AdamW with wd 0. */
    OCT_OPTIM_ADAMW,
    /* Muon (MomentUm Orthogonalized by Newton-Schulz) for the matrices muon_select picks, AdamW
     * (beta1, beta2, eps, weight_decay) for every other tensor. For a picked (r, c) matrix:
     * buf += (1 - mu)(g - buf); d = nesterov ? g + mu (buf - g) : buf; O =
     * oct_muon_orthogonalize(d); p *= 1 - lr * wd; p -= lr * 0.2 * sqrt(max(r, c)) * O, which gives
     * the update the RMS of a typical AdamW update (Liu et al. 2025, "Muon is scalable for LLM
     * training"). A matrix picked as k row blocks (a fused q/k/v weight: k = 3) has each
     * (r / k, c) block orthogonalized and scaled on its own. Meant for hidden linear weights, not
     * embeddings, output heads, biases or norm gains. */
    OCT_OPTIM_MUON,
    OCT_OPTIM_COUNT
} oct_optim_kind;

typedef struct oct_optim_hyper {
    float weight_decay; /* >= 0 */
    bool no_decay_1d;   /* no weight decay on 1-D tensors (biases, norm gains) */
    float momentum;     /* SGD and Muon, in [0, 1) */
    /* Muon: its momentum rises linearly from 0.85 (or from momentum, when lower) to momentum
     * over the first momentum_warmup steps; 0: constant. */
    int64_t momentum_warmup;
    bool nesterov;      /* SGD and Muon, needs momentum > 0 */
    float beta1, beta2; /* AdamW (and Muon's AdamW part), in [0, 1) */
    float eps;          /* AdamW (and Muon's AdamW part), > 0 */
    /* Muon: which 2-D tensors it orthogonalizes (it never picks others) and how: 0 leaves p to
     * AdamW, k >= 1 orthogonalizes it as k row blocks (k divides p's rows). ctx is passed
     * through. NULL picks every 2-D tensor whole; oct_gpt_muon_blocks picks a GPT's block
     * weights, with q, k and v apart. */
    int (*muon_select)(const oct_tensor *p, const void *ctx);
    const void *muon_ctx;
} oct_optim_hyper;

typedef struct oct_optim {
    oct_optim_kind kind;
    oct_optim_hyper h;
    const oct_params *params; /* borrowed; must not change after init */
    /* State tensors in the model arena, n_state of them: for SGD with momentum one
     * "<param>.momentum" per parameter; for AdamW "<param>.adam_m" and "<param>.adam_v" per
     * parameter (interleaved: m0, v0, m1, v1, ...); none for plain SGD. Muon keeps AdamW's
     * layout, but a matrix it orthogonalizes has one "<param>.muon_m" and a NULL second slot.
     * The array is malloc'd. */
    oct_tensor **state;
    int n_state;
    int64_t step; /* number of oct_optim_step calls so far (AdamW's t is step + 1 while
                     stepping); restore it together with the state when resuming */
    int threads;  /* threads for the update (default 1; elementwise, so the result does not
                     depend on it) */
    /* Gradients of data-parallel shards not yet added into the parameters' (oct_dp with
     * defer_reduce): when n_extra > 0, the step first adds extra[s][i] into parameter i's
     * gradient and zeroes it, slice by slice, in the same pass as the update. */
    float *const *const *extra;
    int n_extra;
    /* Muon's matrices (parameter indices, n_muon of them) and each one's Newton-Schulz
     * workspace at muon_work + muon_off[k], allocated once by oct_optim_init (malloc'd). */
    int *muon_which;
    int64_t *muon_off;
    float *muon_work;
    int n_muon;
} oct_optim;

/* PyTorch's defaults: SGD momentum 0, wd 0; AdamW betas (0.9, 0.999), eps 1e-8, wd 0.01;
 * Muon momentum 0.95 with Nesterov, wd 0.1, AdamW's betas and eps for the other tensors. */
oct_optim_hyper oct_optim_defaults(oct_optim_kind kind);
/* Validates h and allocates zeroed state for every tensor of params in arena. Fails with
 * OCT_EINVAL (and a message naming the hyperparameter) when a value is out of range. */
oct_status oct_optim_init(oct_optim *o, oct_optim_kind kind, const oct_params *params,
                          oct_arena *arena, const oct_optim_hyper *h);
/* Frees the state array (the tensors stay in the arena). oct_optim_free(NULL) is a no-op. */
void oct_optim_free(oct_optim *o);
/* One update of every parameter from its gradient with learning rate lr; then step++. */
void oct_optim_step(oct_optim *o, float lr);
/* "sgd", "adamw", "muon" and back; parse fails with OCT_EINVAL. */
const char *oct_optim_kind_name(oct_optim_kind kind);
oct_status oct_optim_kind_parse(const char *name, oct_optim_kind *out);

/* Replaces the (rows, cols) row-major matrix x by an approximately orthogonal matrix with the
 * same singular vectors (singular values pushed into about [0.7, 1.2]): x /= max(||x||_F, 1e-7),
 * then five quintic Newton-Schulz iterations x = a x + (b A + c A^2) x with A = x x^T (x^T x
 * on the right when rows > cols), (a, b, c) = (3.4445, -4.7750, 2.0315), in float32 with
 * OpenBLAS sgemm. work holds rows * cols + 2 * min(rows, cols)^2 floats. */
void oct_muon_orthogonalize(float *x, int rows, int cols, float *work);

/* ---- learning-rate schedules ---------------------------------------------------------------- */

typedef enum {
    OCT_SCHED_CONSTANT, /* lr */
    OCT_SCHED_STEP,     /* lr * gamma^floor(t / step_size) */
    OCT_SCHED_COSINE,   /* from lr down to lr * min_ratio along a half cosine over total steps */
    OCT_SCHED_LINEAR,   /* lr until the last `decay` steps, then a straight line down to
                           lr * min_ratio at total (warmup-stable-decay; decay 0: all of it) */
    OCT_SCHED_COUNT
} oct_schedule_kind;

/* Every kind starts with an optional linear warmup: step s < warmup gets lr * (s + 1) / warmup.
 * The schedule proper then runs on t = s - warmup. */
typedef struct oct_schedule {
    oct_schedule_kind kind;
    float lr;          /* base (peak) learning rate, > 0 */
    int64_t warmup;    /* linear warmup steps, >= 0 */
    int64_t total;     /* cosine, linear: total steps including warmup, > warmup; lr stays at
                          the minimum from there on */
    float min_ratio;   /* cosine, linear: final lr / lr, in [0, 1] */
    int64_t decay;     /* linear: steps of the final decay, 0 (all after warmup) up to
                          total - warmup */
    int64_t step_size; /* step: decay every step_size steps, > 0 */
    float gamma;       /* step: decay factor, > 0 */
} oct_schedule;

/* Learning rate for 0-based step. */
float oct_lr_at(const oct_schedule *s, int64_t step);
/* OCT_EINVAL with a message naming the field when s is inconsistent. */
oct_status oct_schedule_check(const oct_schedule *s);
/* "constant", "step", "cosine", "linear" and back; parse fails with OCT_EINVAL. */
const char *oct_schedule_kind_name(oct_schedule_kind kind);
oct_status oct_schedule_kind_parse(const char *name, oct_schedule_kind *out);

/* ---- gradient clipping ---------------------------------------------------------------------- */

/* Returns the global L2 norm of all gradients (accumulated in double, in list order, so the
 * result does not depend on threads or vector width). When max_norm > 0 and the norm exceeds
 * it, scales every gradient by max_norm / (norm + 1e-6) as torch.nn.utils.clip_grad_norm_ does.
 * A non-finite norm is returned without touching the gradients, for the caller to handle. */
double oct_clip_grad_norm(const oct_params *p, float max_norm);

#endif
