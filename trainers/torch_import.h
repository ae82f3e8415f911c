/* PyTorch state dicts, both ways. Import of models trained in PyTorch: state dicts saved as
 * safetensors (safetensors.torch
 * save_file or save_model), with the prefixes that torch.compile ("_orig_mod.") and
 * DistributedDataParallel ("module.") add; F32, F16, BF16 and F64 tensors are read as float32.
 * A GPT in the layout of nanoGPT (transformer.wte, transformer.h.N.attn.c_attn, ..., lm_head) or
 * of benchmarks/torch_gpt.py (blocks.N.c_fc, ...); an MLP of nn.Linear layers (benchmarks/
 * torch_mlp.py's, or any nn.Sequential's "0.weight", "0.bias", "2.weight", ...). */
#ifndef OCTET_TRAINERS_TORCH_IMPORT_H
#define OCTET_TRAINERS_TORCH_IMPORT_H

#include "gpt_model.h"
#include "mlp_model.h"

/* What an import found besides the weights. */
typedef struct torch_import_info {
    int zero_biases; /* biases absent from the file (nanoGPT's bias=False), set to 0 */
    int buffers;     /* non-parameter tensors skipped (nanoGPT's causal mask "attn.bias") */
} torch_import_info;

/* Builds m (fp32; given's exact_gelu, rope and no_wpe: GELU exact with erf, as nanoGPT's
 * nn.GELU(), or the tanh form, as torch_gpt.py's; rotary embedding on top of the learned
 * positions or instead of them, as octet's) from the state dict at path: the architecture from
 * the tensors' shapes (vocabulary and width from the token embedding, context from the position
 * embedding, or without one (no_wpe) from the metadata block_size,
 * layers from the blocks, MLP width from the first block), n_head heads (a state dict does not
 * record it), the output layer tied to the token embedding when the file has no lm_head.weight,
 * or only it (save_model keeps one name of a shared tensor), vocab as the token ids' bytes (its
 * size must equal the embedding's rows). Biases may be absent only all together (bias=False:
 * zeros). Errors name the file and the tensor: missing, unexpected, misshapen, non-finite, or a
 * non-float dtype; or the metadata key, when the file records an architecture (export --torch's
 * n_layer, n_embd, block_size, vocab_size) other than its tensors'. On failure m is zeroed. */
oct_status gpt_import(gpt_model *m, const char *path, const oct_vocab *vocab, int n_head,
                      const oct_gpt_config *given, torch_import_info *info);

/* Fails (a message naming the file and its kind) on an octet model or export: they need no
 * import. gpt_import and mlp_import check it too. */
oct_status torch_import_refuse_octet(const oct_st_file *f);

/* Whether the open file holds a GPT (a "wte.weight" or "wpe.weight" under some prefix) rather
 * than an MLP. */
bool torch_import_is_gpt(const oct_st_file *f);

/* Builds m from the state dict at path: its 2-D ".weight" tensors in order of their names (digit
 * runs compared as numbers: "net.10" after "net.2") are the layers, each with the ".bias" of the
 * same stem (0 when absent: bias=False), the hidden layers followed by act, inputs normalized as
 * (pixel / 255 - mean) / std. Errors name the file and the tensor: one with no place in an MLP,
 * layers that do not chain, non-finite values, a non-float dtype. On failure m is zeroed. */
oct_status mlp_import(mlp_model *m, const char *path, oct_activation act, float mean, float std,
                      torch_import_info *info);

/* Export back: the float weights of the GPT or MLP model file at path (fp32, or a QAT model's
 * weights, which are float32 too) written atomically at out as an F32 state dict that
 * safetensors.torch.load_file reads. A GPT in nanoGPT's layout ("transformer.wte.weight",
 * "transformer.h.N.attn.c_attn.weight", ..., "lm_head.weight", absent when tied), with its
 * config in the metadata (n_layer, n_head, n_embd, block_size, vocab_size, gelu "tanh" or
 * "erf", positions "learned", "learned+rope" or "rope", vocab_bytes: the JSON array of the token
 * ids' bytes); an MLP as benchmarks/ torch_mlp.py's nn.Linear layers "fc1", "fc2", ... (metadata:
 * activation, mean, std, and gelu "tanh" with a GELU: octet's MLP GELU is
 * nn.GELU(approximate="tanh")). gpt_import and mlp_import read the file back to the same weights.
 * Quantizer state (ranges, learned scales) is left out; with keep_source, the data the model
 * records (octet.source) is kept. No "octet.crc32": PyTorch may write the tensors again in another
 * order and keep the metadata. *kind is set to "GPT" or "MLP". */
oct_status torch_export(const char *path, const char *out, bool keep_source, const char **kind);

#endif
