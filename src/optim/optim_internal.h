/* Shared between optim.c and muon.c. */
#ifndef OCTET_OPTIM_INTERNAL_H
#define OCTET_OPTIM_INTERNAL_H

#include "octet/optim.h"
#include "octet/parallel.h"

/* Whether Muon orthogonalizes p: a 2-D tensor that h->muon_select picks (all without one). */
bool oct__muon_picks(const oct_optim_hyper *h, const oct_tensor *p);
/* buf += (1 - mu)(g - buf): Muon's momentum, elementwise (run on slices of a matrix). */
void oct__muon_momentum(float *restrict buf, const float *restrict g, int64_t n, float mu);
/* The matrix part of a Muon step, after the sliced pass has added the shards' gradients and
 * updated the momentum: orthogonalizes and applies the update of every picked matrix. */
void oct__muon_step(const oct_optim *o, float lr);

#endif
