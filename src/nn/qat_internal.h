/* Internal to src/nn: the quantizer-state helpers shared by the QAT MLP (qat.c) and the QAT GPT
 * (gpt_qat.c): creating activation quantizers and quantized linear layers with their named
 * state tensors, and freezing observers. */
#ifndef OCTET_NN_QAT_INTERNAL_H
#define OCTET_NN_QAT_INTERNAL_H

#include "octet/qat.h"

/* A growable list of every quantizer tensor of a model (malloc'd items, free() them). */
typedef struct oct__qat_state {
    oct_tensor ***items;
    int *n;
} oct__qat_state;

/* Appends t to the list. */
void oct__qat_state_push(oct__qat_state st, oct_tensor *t);
/* Initializes a (mode, cfg->act_bits unsigned asymmetric codes) with tensors "<prefix>.lo",
 * "<prefix>.hi" and, for LSQ, the parameter "<prefix>.scale", for PACT "<prefix>.alpha"
 * (appended to params); all of them are pushed to st. */
void oct__qat_act_init(oct_act_quant *a, const char *prefix, oct_qat_amode mode,
                       const oct_qat_config *cfg, oct_arena *arena, oct_params *params,
                       oct__qat_state st);
/* Initializes l around fp with cfg's weight scheme, one GEMM thread and, for LSQ weights, the
 * parameter "<name>.wscale" (out) (appended to params and pushed to st). */
void oct__qat_linear_init(oct_qat_linear *l, const oct_linear_layer *fp, oct_act_quant *in_q,
                          bool owns_in, oct_act_quant *out_q, bool relu, const char *name,
                          const oct_qat_config *cfg, oct_arena *arena, oct_params *params,
                          oct__qat_state st);
/* Sets the frozen flag of acts[0..n): LSQ observers are frozen once the step is initialized
 * (they only fix z from the first batch), the others when freeze. */
void oct__qat_acts_sync_frozen(oct_act_quant *acts, int n, bool freeze);

/* OCT_EFORMAT naming the tensor unless the state of acts[0..n_acts) and of the LSQ weight steps
 * of lin[0..n_lin) is valid (see oct_qat_mlp_check). */
/* oct_qat_mlp_project for the given quantizers. */
void oct__qat_project_state(oct_act_quant *acts, int n_acts, oct_qat_linear *lin, int n_lin);
oct_status oct__qat_check_state(const oct_act_quant *acts, int n_acts, const oct_qat_linear *lin,
                                int n_lin);

#endif
