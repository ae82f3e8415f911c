/* The parameter list: the named trainable tensors of a model, in creation order. The optimizer
 * steps over it, gradient clipping and zeroing walk it, and checkpoints save it by name. */
#include "octet/tensor.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void oct_params_init(oct_params *p) {
    memset(p, 0, sizeof *p);
}

void oct_params_free(oct_params *p) {
    if (!p) return;
    free(p->items);
    memset(p, 0, sizeof *p);
}

void oct_params_add(oct_params *p, oct_tensor *t) {
    OCT_ASSERT(t->requires_grad && t->grad != NULL);
    OCT_ASSERT(t->name != NULL && oct_params_find(p, t->name) == NULL);
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        oct_tensor **items = realloc(p->items, (size_t)cap * sizeof *items);
        OCT_ALLOC_CHECK(items, (size_t)cap * sizeof *items);
        p->items = items;
        p->cap = cap;
    }
    if (t->param_id == 0) t->param_id = p->n + 1; /* its index in the first list it joins */
    p->items[p->n++] = t;
}

oct_tensor *oct_params_find(const oct_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->items[i]->name, name) == 0) return p->items[i];
    return NULL;
}

void oct_params_zero_grad(const oct_params *p) {
    for (int i = 0; i < p->n; i++)
        memset(p->items[i]->grad, 0, (size_t)p->items[i]->size * sizeof(float));
}

int64_t oct_params_count(const oct_params *p) {
    int64_t n = 0;
    for (int i = 0; i < p->n; i++) n += p->items[i]->size;
    return n;
}

const char *oct_arena_printf(oct_arena *a, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    OCT_ASSERT(len >= 0);
    char *s = oct_arena_alloc(a, (size_t)len + 1);
    if ((size_t)len < sizeof buf) {
        memcpy(s, buf, (size_t)len + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}
