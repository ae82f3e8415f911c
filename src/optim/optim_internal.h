/* Shared between optim.c and muon.c. */
#ifndef OCTET_OPTIM_INTERNAL_H
#define OCTET_OPTIM_INTERNAL_H

#include "octet/optim.h"
#include "octet/parallel.h"

/* How Muon orthogonalizes p: 0 (not at all: AdamW) unless p is 2-D, else what h->muon_select
 * answers (1, whole, without one). */
int oct__muon_blocks(const oct_optim_hyper *h, const oct_tensor *p);
/* Muon's momentum at 0-based step `step` (h->momentum_warmup). */
float oct__muon_momentum_at(const oct_optim_hyper *h, int64_t step);
/* buf += (1 - mu)(g - buf): Muon's momentum, elementwise (run on slices of a matrix). */
void oct__muon_momentum(float *restrict buf, const float *restrict g, int64_t n, float mu);
/* Allocates o's Muon workspace (o->muon_*) for the matrices oct_optim_init gave a NULL
 * second state slot; OCT_ENOMEM if malloc fails (the caller frees o). */
oct_status oct__muon_alloc(oct_optim *o);
/* The matrix part of a Muon step, after the sliced pass has added the shards' gradients and
 * updated the momentum: orthogonalizes and applies the update of every picked matrix. */
void oct__muon_step(const oct_optim *o, float lr, float mu);

#endif
