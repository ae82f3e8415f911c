/* Import of a GPT trained in PyTorch: a state dict saved as safetensors (safetensors.torch
 * save_file or save_model) in the layout of nanoGPT (transformer.wte, transformer.h.N.attn.c_attn,
 * ..., lm_head) or of benchmarks/torch_gpt.py (blocks.N.c_fc, ...), with the prefixes that
 * torch.compile ("_orig_mod.") and DistributedDataParallel ("module.") add. F32, F16, BF16 and
 * F64 tensors are read as float32. */
#ifndef OCTET_TRAINERS_GPT_IMPORT_H
#define OCTET_TRAINERS_GPT_IMPORT_H

#include "gpt_model.h"

/* What an import found besides the weights. */
typedef struct gpt_import_info {
    int zero_biases; /* biases absent from the file (nanoGPT's bias=False), set to 0 */
    int buffers;     /* non-parameter tensors skipped (nanoGPT's causal mask "attn.bias") */
} gpt_import_info;

/* Builds m (fp32; GELU exact with erf, as nanoGPT's nn.GELU(), or with exact_gelu false the tanh
 * form, as torch_gpt.py's) from the state dict at path: the architecture
 * from the tensors' shapes (vocabulary and width from the token embedding, context from the
 * position embedding, layers from the blocks, MLP width from the first block), n_head heads
 * (a state dict does not record it), the output layer tied to the token embedding when the file
 * has no lm_head.weight, vocab as the token ids' bytes (its size must equal the embedding's
 * rows). Errors name the file and the tensor: missing, unexpected, misshapen, non-finite, or a
 * non-float dtype. On failure m is zeroed. */
oct_status gpt_import(gpt_model *m, const char *path, const oct_vocab *vocab, int n_head,
                      bool exact_gelu, gpt_import_info *info);

#endif
