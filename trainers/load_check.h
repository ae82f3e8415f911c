/* Checks the loaders of octet's model files share (mlp_model.c, gpt_model.c, gpt_checkpoint.c):
 * parameters and optimizer state must be finite, QAT metadata well formed. Errors are one line
 * naming the file and the tensor or metadata key. */
#ifndef OCTET_TRAINERS_LOAD_CHECK_H
#define OCTET_TRAINERS_LOAD_CHECK_H

#include <stdint.h>

#include "octet/io.h"

/* The largest octet.qat_steps a file may record: 2^53, which every JSON reader holds exactly and
 * a step counter never reaches. */
#define LOAD_MAX_QAT_STEPS (INT64_C(1) << 53)

/* OCT_EFORMAT "<path>: tensor '<name>' holds <v> at index <i>, not a finite value" unless the n
 * values x are finite. */
oct_status load_check_finite(const char *path, const char *name, const float *x, int64_t n);
/* Reads the parameter t (by t->name, shape checked: oct_st_read_f32) from f and checks that its
 * values are finite; a missing tensor is OCT_EFORMAT "<path>: tensor '<name>' is missing". */
oct_status load_read_param(const oct_st_file *f, oct_tensor *t);
/* The value of metadata "octet.qat_steps" of f: decimal digits, at most LOAD_MAX_QAT_STEPS;
 * OCT_EFORMAT naming the file and the key otherwise (also when it is missing). */
oct_status load_qat_steps(const oct_st_file *f, int64_t *steps);
/* Returns code after setting the error to "<path>: <the last error>" (a library message, such as
 * a quantizer check's, given the file it came from). */
oct_status load_fail_in(oct_status code, const char *path);

#endif
