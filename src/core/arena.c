/* Arena allocator: a chain of large blocks handed out by bumping a pointer.
 *
 * Rewinding keeps the blocks, so after the first training step the step arena allocates no
 * memory at all. Allocations are OCT_ALIGN-byte aligned for SIMD kernels.
 */
#include "octet/tensor.h"

#include <stdlib.h>
#include <string.h>

struct oct_arena_block {
    oct_arena_block *next;
    size_t cap;  /* usable bytes in data */
    size_t used; /* bytes handed out from data */
    unsigned char *data;
};

void oct_arena_init(oct_arena *a, size_t block_size) {
    memset(a, 0, sizeof *a);
    a->block_size = block_size ? block_size : (size_t)1 << 20;
}

void oct_arena_free(oct_arena *a) {
    if (!a) return;
    oct_arena_block *b = a->head;
    while (b) {
        oct_arena_block *next = b->next;
        free(b);
        b = next;
    }
    memset(a, 0, sizeof *a);
}

static oct_arena_block *block_new(size_t cap) {
    size_t header = (sizeof(oct_arena_block) + OCT_ALIGN - 1) / OCT_ALIGN * OCT_ALIGN;
    oct_arena_block *b = aligned_alloc(OCT_ALIGN, header + cap);
    if (!b) oct__out_of_memory(header + cap, __FILE__, __LINE__);
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    b->data = (unsigned char *)b + header;
    return b;
}

void *oct_arena_alloc(oct_arena *a, size_t bytes) {
    size_t need = (bytes + OCT_ALIGN - 1) / OCT_ALIGN * OCT_ALIGN;
    if (need == 0) need = OCT_ALIGN;
    oct_arena_block *b = a->cur;
    /* Walk forward through blocks kept from before a rewind, then grow the chain. */
    while (b && b->used + need > b->cap) {
        b = b->next;
        if (b) b->used = 0;
    }
    if (!b) {
        size_t cap = need > a->block_size ? need : a->block_size;
        b = block_new(cap);
        a->reserved += cap;
        if (a->cur) {
            b->next = a->cur->next;
            a->cur->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    a->cur = b;
    void *p = b->data + b->used;
    b->used += need;
    a->in_use += need;
    if (a->in_use > a->peak) a->peak = a->in_use;
    return p;
}

void *oct_arena_calloc(oct_arena *a, size_t bytes) {
    void *p = oct_arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

oct_arena_mark oct_arena_save(const oct_arena *a) {
    oct_arena_mark m = {a->cur, a->cur ? a->cur->used : 0, a->in_use};
    return m;
}

void oct_arena_rewind(oct_arena *a, oct_arena_mark mark) {
    if (mark.block) {
        mark.block->used = mark.used;
        a->cur = mark.block;
    } else {
        a->cur = a->head;
        if (a->cur) a->cur->used = 0;
    }
    a->in_use = mark.in_use;
}

void oct_arena_reset(oct_arena *a) {
    oct_arena_mark m = {NULL, 0, 0};
    oct_arena_rewind(a, m);
}
