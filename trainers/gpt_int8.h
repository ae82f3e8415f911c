/* The int8 GPT on the command line: `octet export` of a QAT GPT, `octet eval --int8` of a GPT
 * export (validation loss on the fixed windows `octet train gpt` reports), and `octet generate`
 * with the integer engine. */
#ifndef OCTET_TRAINERS_GPT_INT8_H
#define OCTET_TRAINERS_GPT_INT8_H

#include <stdbool.h>

/* True if path is a safetensors file whose metadata says octet-int8-gpt. */
bool gpt_int8_is_export(const char *path);
/* True if path is an octet GPT model (metadata octet.model = "gpt"). */
bool gpt_is_model(const char *path);
/* Exports the QAT GPT in path to out; prints a summary. Returns a CLI exit status. */
int gpt_int8_export(const char *path, const char *out, bool keep_source);
/* Loss of the export on n_batches x batch validation windows of its context from text (drawn
 * as `octet train gpt` draws them; n_batches 0: the whole split in windows every stride
 * characters, 0 meaning the context: consecutive ones; gpt_scored_loss); prints nats and bits
 * per character and tokens/s. With compare (a QAT GPT model file, or NULL) it also
 * checks, position by position, that the engine's logits equal that model's bit for bit, and fails
 * unless all do. */
int gpt_int8_eval(const char *path, const char *text, int n_batches, int stride, int batch,
                  int threads, const char *compare);
/* The same validation loss for an fp32 or QAT GPT model file (its simulated-int8 forward pass
 * for QAT), on the same windows, so it can be set next to the export's. */
int gpt_model_eval(const char *path, const char *text, int n_batches, int stride, int batch,
                   int threads);
/* Samples n characters after prompt with the integer engine and prints them. */
int gpt_int8_generate(const char *path, const char *prompt, int n, float temperature, int top_k,
                      int seed, int threads);

#endif
