/* The MLP model as the trainer sees it: its arena, parameters, layers, input normalization,
 * and its safetensors file (fp32 weights plus metadata describing the architecture). */
#ifndef OCTET_TRAINERS_MLP_MODEL_H
#define OCTET_TRAINERS_MLP_MODEL_H

#include "octet/data.h"
#include "octet/nn.h"
#include "octet/qat.h"

typedef struct mlp_model {
    oct_arena arena; /* parameters, gradients, optimizer and quantization state */
    oct_params params;
    oct_mlp mlp;
    float mean, std;  /* input pixel normalization (oct_pixel_normalize) */
    oct_qat_mlp *qat; /* quantizer state (malloc'd), NULL for an fp32 model */
    bool qat_on;      /* forward passes run quantized (false during the fp32 warm-up) */
    char *source;     /* its data directory (CLI_META_SOURCE; malloc'd), NULL: unknown */
} mlp_model;

/* A freshly initialized model: sizes[0] inputs, ..., sizes[n-1] classes. */
oct_status mlp_model_init(mlp_model *m, const int *sizes, int n_sizes, oct_activation act,
                          oct_init init, uint64_t seed);
/* Adds quantizer state (oct_qat_mlp_init: call before creating the optimizer); qat_on stays
 * false until the caller switches it on. */
oct_status mlp_model_enable_qat(mlp_model *m, const oct_qat_config *cfg);
/* logits (B, classes) from x (B, in): the QAT forward when qat_on, else the fp32 one. */
oct_tensor *mlp_model_forward(mlp_model *m, oct_graph *g, oct_tensor *x);
/* Loads a model written by mlp_model_save: fp32, or QAT (metadata "octet.qat", the config JSON,
 * and "octet.qat_steps"; quantizer state tensors "act0.lo", ...), which loads with qat_on.
 * Refused (OCT_EFORMAT, or the reader's error), with one message naming the file and the tensor
 * or key: malformed metadata, a non-finite parameter, input mean or std, a step count that is
 * not in [0, 2^53], quantizer state oct_qat_mlp_check refuses. On failure m is zeroed. */
oct_status mlp_model_load(mlp_model *m, const char *path);
/* Writes the parameters (and a QAT model's quantizer state and config) and metadata atomically
 * (with a crc32 of the data). */
oct_status mlp_model_save(const mlp_model *m, const char *path);
void mlp_model_free(mlp_model *m);

/* OCT_ESHAPE, naming the model file, the split ("training", "test") and the directory dir,
 * unless the images of set have `inputs` pixels and labels below `classes` (a model's first
 * and last layer sizes); eval, calibrate and the int8 engine's eval check their data with it. */
oct_status mlp_data_check(const char *model, int inputs, int classes, const oct_image_set *set,
                          const char *split, const char *dir);

/* Accuracy (fraction correct) and mean cross-entropy of the model (mlp_model_forward, in eval
 * mode) on a whole image set. */
typedef struct mlp_eval {
    double accuracy, loss;
    double seconds;
} mlp_eval;

mlp_eval mlp_model_evaluate(mlp_model *m, oct_graph *g, const oct_image_set *set);

#endif
