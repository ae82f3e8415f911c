/* Helpers shared by the commands that run exported int8 models (`octet eval --int8`,
 * `octet predict`): choosing the GEMM kernel by name and evaluating an int8 model. */
#ifndef OCTET_TRAINERS_INT8_MODEL_H
#define OCTET_TRAINERS_INT8_MODEL_H

#include <stdbool.h>

#include "octet/data.h"
#include "octet/int8.h"

/* Selects the int8 GEMM kernel named "auto", "portable", "avx2" or "avx512vnni". Prints one
 * line and returns CLI_USAGE for an unknown name, CLI_FAIL for a kernel this CPU lacks;
 * CLI_OK otherwise. cmd names the command in the message. */
int int8_select_kernel(const char *cmd, const char *name);

/* True if the safetensors file at path says it is an int8 MLP export (metadata octet.format);
 * false for other files and for files that cannot be opened (loading reports those). */
bool int8_is_export(const char *path);

/* `octet eval --int8 FILE`: loads the export, checks that it fits the test set in data_dir,
 * and prints accuracy and speed. With compare (a QAT model file, or NULL) it also runs that
 * model's simulated-int8 forward pass and counts the images whose logits are bit-identical and
 * whose predictions agree; any difference fails. Returns a CLI exit status. */
int int8_eval(const char *path, const char *data_dir, int batch, int threads, const char *compare);

#endif
