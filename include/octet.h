/* octet: quantization-aware training in C11. The umbrella header.
 *
 * A short tour (every function is documented in its module header):
 *
 *   octet/status.h   oct_status codes; oct_last_error() holds the one-line message of a failure.
 *   octet/tensor.h   arenas (model arena for parameters, step arena rewound every step),
 *                    float32 tensors up to 4-D, the PCG32 rng.
 *   octet/graph.h    the eager autograd tape: ops record themselves, oct_graph_backward()
 *                    accumulates gradients, oct_graph_reset() starts the next step.
 *   octet/ops.h      differentiable ops (matmul, linear, activations, losses, layernorm,
 *                    attention, ...).
 *   octet/nn.h       parameter lists, linear layers, the MLP and the GPT.
 *   octet/optim.h    SGD, AdamW, learning-rate schedules, gradient clipping.
 *   octet/quant.h    the quantization arithmetic shared by training and deployment.
 *   octet/nonlinear.h float32 row kernels (LayerNorm, GELU, attention) shared likewise.
 *   octet/qat.h      fake-quant ops, the quantized linear op, the QAT MLP.
 *   octet/int8.h     int8 GEMM kernels, the integer linear layer, the int8 MLP engine/format.
 *   octet/io.h       safetensors files (atomic writes, crc32).
 *   octet/data.h     IDX image sets, minibatches, text corpora.
 *   octet/parallel.h the thread pool.
 *
 * A training step:
 *
 *   oct_graph_reset(&g);
 *   oct_tensor *loss = oct_cross_entropy(&g, oct_mlp_forward(&mlp, &g, x), labels);
 *   oct_params_zero_grad(&params);
 *   oct_graph_backward(&g, loss);
 *   oct_optim_step(&opt, lr);
 */
#ifndef OCTET_H
#define OCTET_H

#include "octet/status.h"
#include "octet/tensor.h"
#include "octet/graph.h"
#include "octet/ops.h"
#include "octet/nn.h"
#include "octet/optim.h"
#include "octet/quant.h"
#include "octet/nonlinear.h"
#include "octet/qat.h"
#include "octet/int8.h"
#include "octet/io.h"
#include "octet/data.h"
#include "octet/parallel.h"

#endif
