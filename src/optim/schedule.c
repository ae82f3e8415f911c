/* Learning-rate schedules: constant, step decay, cosine decay and warmup-stable-linear-decay, each
 * after an optional linear warmup. Computed in double from the step number alone, so a resumed run
 * gets the same rates as an uninterrupted one. */
#include "octet/optim.h"

#include <math.h>
#include <string.h>

static const char *const sched_names[] = {
    [OCT_SCHED_CONSTANT] = "constant",
    [OCT_SCHED_STEP] = "step",
    [OCT_SCHED_COSINE] = "cosine",
    [OCT_SCHED_LINEAR] = "linear",
};
_Static_assert(sizeof sched_names / sizeof sched_names[0] == OCT_SCHED_COUNT, "schedule names");

const char *oct_schedule_kind_name(oct_schedule_kind kind) {
    return (unsigned)kind < OCT_SCHED_COUNT ? sched_names[kind] : "?";
}

oct_status oct_schedule_kind_parse(const char *name, oct_schedule_kind *out) {
    for (int i = 0; i < OCT_SCHED_COUNT; i++)
        if (strcmp(sched_names[i], name) == 0) {
            *out = (oct_schedule_kind)i;
            return OCT_OK;
        }
    return oct_fail(OCT_EINVAL, "lr schedule '%s': expected constant, step, cosine or linear",
                    name);
}

oct_status oct_schedule_check(const oct_schedule *s) {
    if ((unsigned)s->kind >= OCT_SCHED_COUNT)
        return oct_fail(OCT_EINVAL, "lr schedule kind %d out of range", (int)s->kind);
    if (!(s->lr > 0.0f) || !isfinite(s->lr))
        return oct_fail(OCT_EINVAL, "learning rate %g: expected > 0", s->lr);
    if (s->warmup < 0)
        return oct_fail(OCT_EINVAL, "warmup %lld: expected >= 0", (long long)s->warmup);
    if (s->kind == OCT_SCHED_STEP) {
        if (s->step_size <= 0)
            return oct_fail(OCT_EINVAL, "step schedule: step size %lld, expected > 0",
                            (long long)s->step_size);
        if (!(s->gamma > 0.0f))
            return oct_fail(OCT_EINVAL, "step schedule: gamma %g, expected > 0", s->gamma);
    }
    if (s->kind == OCT_SCHED_COSINE || s->kind == OCT_SCHED_LINEAR) {
        const char *name = oct_schedule_kind_name(s->kind);
        if (s->total <= s->warmup)
            return oct_fail(OCT_EINVAL, "%s schedule: total steps %lld must exceed warmup %lld",
                            name, (long long)s->total, (long long)s->warmup);
        if (!(s->min_ratio >= 0.0f && s->min_ratio <= 1.0f))
            return oct_fail(OCT_EINVAL, "%s schedule: min lr ratio %g, expected in [0, 1]", name,
                            s->min_ratio);
    }
    if (s->kind == OCT_SCHED_LINEAR && (s->decay < 0 || s->decay > s->total - s->warmup))
        return oct_fail(OCT_EINVAL, "linear schedule: decay steps %lld, expected 0 to %lld",
                        (long long)s->decay, (long long)(s->total - s->warmup));
    return OCT_OK;
}

float oct_lr_at(const oct_schedule *s, int64_t step) {
    OCT_ASSERT(step >= 0);
    double lr = s->lr;
    if (step < s->warmup) return (float)(lr * (double)(step + 1) / (double)s->warmup);
    int64_t t = step - s->warmup;
    switch (s->kind) {
    case OCT_SCHED_CONSTANT:
        return (float)lr;
    case OCT_SCHED_STEP:
        OCT_ASSERT(s->step_size > 0);
        return (float)(lr * pow(s->gamma, (double)(t / s->step_size)));
    case OCT_SCHED_COSINE: {
        OCT_ASSERT(s->total > s->warmup);
        double lo = lr * s->min_ratio, span = (double)(s->total - s->warmup);
        if ((double)t >= span) return (float)lo;
        double coeff = 0.5 * (1.0 + cos(M_PI * (double)t / span));
        return (float)(lo + coeff * (lr - lo));
    }
    case OCT_SCHED_LINEAR: {
        OCT_ASSERT(s->total > s->warmup);
        double lo = lr * s->min_ratio, span = (double)(s->total - s->warmup);
        double decay = s->decay > 0 ? (double)s->decay : span, left = span - (double)t;
        if (left <= 0.0) return (float)lo;
        if (left >= decay) return (float)lr;
        return (float)(lo + left / decay * (lr - lo));
    }
    case OCT_SCHED_COUNT:
        break;
    }
    OCT_ASSERT(!"lr schedule kind out of range");
    return 0.0f;
}
