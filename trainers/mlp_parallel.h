/* Data-parallel fp32 training steps for the MLP: the minibatch is split into one shard per
 * thread, each thread runs forward and backward of its shard on its own graph with a replica
 * of the model (same weights, its own gradient buffers, single-threaded OpenBLAS), and the
 * shard gradients are summed into the model's in a fixed order. For the small GEMMs of an MLP
 * this uses both cores far better than splitting each GEMM. Results are reproducible for a
 * given thread count. */
#ifndef OCTET_TRAINERS_MLP_PARALLEL_H
#define OCTET_TRAINERS_MLP_PARALLEL_H

#include "mlp_model.h"

#define MLP_MAX_SHARDS 8

typedef struct mlp_parallel {
    int shards;                       /* threads (1 = plain single-graph steps) */
    oct_mlp replica[MLP_MAX_SHARDS];  /* replica[0] is unused: shard 0 uses the model itself */
    oct_params grads[MLP_MAX_SHARDS]; /* layer tensors of the model (0) and replicas, in order */
    oct_graph graphs[MLP_MAX_SHARDS]; /* graphs[0] is unused: shard 0 uses the caller's graph */
} mlp_parallel;

/* Prepares `shards` replicas of m's fp32 layers (their tensors in m's arena). */
void mlp_parallel_init(mlp_parallel *p, mlp_model *m, int shards, uint64_t seed);
void mlp_parallel_free(mlp_parallel *p);

/* One fp32 training step on the images idx[0..n): zeroes the gradients, accumulates the
 * gradient of the mean cross-entropy into m's parameters and returns the loss. g is shard 0's
 * graph. The caller clips and steps the optimizer. */
float mlp_parallel_step(mlp_parallel *p, mlp_model *m, oct_graph *g, const oct_image_set *set,
                        const int32_t *idx, int n);

#endif
