/* Command-line plumbing shared by every `octet` subcommand: table-driven flag parsing with
 * one-line errors, a progress bar, and a JSON Lines metrics log. Only the CLI prints. */
#ifndef OCTET_TRAINERS_CLI_H
#define OCTET_TRAINERS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "octet/io.h"

/* Metadata naming the data a model was trained on (a text file, an IDX directory): commands
 * that read data default to it (cli_file_source). */
#define CLI_META_SOURCE "octet.source"

/* Exit statuses: 0 success, 1 runtime failure (bad file, ...), 2 usage error. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_HELP = 3 };

typedef enum { CLI_INT, CLI_FLOAT, CLI_STR, CLI_BOOL, CLI_INTS } cli_kind;

#define CLI_MAX_INTS 16

/* A list of integers given as "256,128". */
typedef struct cli_ints {
    int n;
    int v[CLI_MAX_INTS];
} cli_ints;

typedef struct cli_flag {
    const char *name; /* "--lr" */
    cli_kind kind;
    void *dst;        /* int*, float*, const char**, bool*, cli_ints* */
    const char *help; /* one line; the default is printed from *dst */
    double min, max;  /* accepted range for CLI_INT/CLI_FLOAT/CLI_INTS items */
} cli_flag;

typedef struct cli_cmd {
    const char *name;    /* "train mlp" */
    const char *usage;   /* "[flags]" or "MODEL [flags]" */
    const char *summary; /* one paragraph */
    const cli_flag *flags;
    int n_flags;
    int min_pos, max_pos; /* positional arguments accepted */
} cli_cmd;

/* Parses argv (without the command words) into the flags' destinations and collects
 * positional arguments into pos (capacity max_pos). Returns CLI_OK, CLI_HELP (help was
 * printed to stdout) or CLI_USAGE (a one-line error was printed to stderr). */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, const char **pos, int *n_pos);
/* cli_parse that also sets seen[i] (n_flags entries) when cmd->flags[i] was given. */
int cli_parse_seen(const cli_cmd *cmd, int argc, char **argv, const char **pos, int *n_pos,
                   bool *seen);
/* cli_parse_seen for arguments that come from elsewhere, such as a checkpoint (no positional
 * arguments): an error, or a --help among them, is one line naming `context` ("--resume CK:
 * its recorded arguments") and returns CLI_FAIL. */
int cli_parse_recorded(const cli_cmd *cmd, const char *context, int argc, char **argv, bool *seen);
/* *p, which the caller now owns; *p becomes NULL (moving a malloc'd string between structs). */
char *cli_take(char **p);
/* Whether paths a and b name the same file: the same inode if both exist, else the same
 * absolute path (cli_abs_path's directory resolution). */
bool cli_same_file(const char *a, const char *b);
/* The absolute path of an output that may not exist yet: its directory resolved (no "..", no
 * links) and its name; joined to the working directory when the directory does not exist; as
 * given when there is no working directory. malloc'd, NULL out of memory. */
char *cli_abs_path(const char *path);
/* The form of data path `path` to record in a model (malloc'd): its absolute path; NULL (nothing
 * recorded) when that is not valid UTF-8 or holds control characters, or out of memory. */
char *cli_source_record(const char *path);
/* f's metadata value for key, malloc'd; NULL when absent (or out of memory). */
char *cli_meta_dup(const oct_st_file *f, const char *key);
/* The data the model file at path records (CLI_META_SOURCE), for a command whose `flag`
 * (--text, --data) was not given: *source is it (malloc'd) or NULL when the file records none
 * (or cannot be read: the command's own load reports that). A recorded path that no longer
 * exists is one error line naming the model and `flag` (CLI_FAIL); OCT_DEFAULT_TEXT is left to
 * the text loader, which finds it from any directory. */
int cli_file_source(const char *path, const char *flag, char **source);
/* Whether the flag called name was on the command line (seen from cli_parse_seen). */
bool cli_given(const cli_cmd *cmd, const bool *seen, const char *name);
/* The first of names (n) that was on the command line, or NULL. */
const char *cli_first_given(const cli_cmd *cmd, const bool *seen, const char *const *names, int n);
void cli_print_help(const cli_cmd *cmd, FILE *out);
/* Whether the flag called name is in list, flag names separated by spaces (" --a --b "). */
bool cli_flag_listed(const char *list, const char *name);
/* The current values of cmd's flags, except those named in skip (" --a --b "), as
 * "--name=value" separated by spaces (floats to 9 digits, "-" for an unset string) into buf.
 * Returns the length, or -1 when it does not fit in n bytes. */
int cli_values(const cli_cmd *cmd, const char *skip, char *buf, size_t n);
/* Prints "octet: <msg>" (the library's last error when msg is NULL) and returns CLI_FAIL. */
int cli_fail(const char *msg);

/* Progress on stderr: a redrawn bar on a terminal, a plain line every few seconds otherwise. */
typedef struct cli_progress {
    const char *label;
    int64_t total;
    double t0, last_print;
    bool tty;
    const char *unit;    /* "samples/s", "tok/s" */
    int64_t start;       /* steps done before begin (a resumed run's), 0 unless set after it */
    int64_t step, shown; /* the last update's step, and the last one drawn (0: none) */
    float loss;
    double items;
} cli_progress;

void cli_progress_begin(cli_progress *p, const char *label, int64_t total, const char *unit);
/* step in [1,total]; items = samples or tokens processed since begin; a NAN loss is not shown. */
void cli_progress_update(cli_progress *p, int64_t step, float loss, double items);
void cli_progress_end(cli_progress *p);

/* Seconds from a monotonic clock. */
double cli_now(void);

/* JSON Lines metrics log: each record one line. NULL path = disabled. */
typedef struct cli_log {
    FILE *f;
    const char *path;
    bool failed; /* a record could not be written: logging stopped */
} cli_log;

/* Truncates the file at path, or appends to it. */
int cli_log_open(cli_log *l, const char *path, bool append);
/* Appends obj (stolen reference; NULL: a record that could not be built) as one line and
 * flushes. At the first record that cannot be written, prints one line ("octet: --log FILE:
 * write failed: <error>; the run goes on without its log") and stops logging. */
void cli_log_write(cli_log *l, json_t *obj);
/* Closes the log: CLI_FAIL (printed) if a record or the close failed, so the command exits 1
 * at its end, after saving its model; else CLI_OK. */
int cli_log_close(cli_log *l);

/* Checks before any long work that the file `path` given with `flag` can be written atomically
 * (a temporary file renamed over it): its directory exists and is writable, and path is not an
 * existing device, FIFO or directory. Prints one line and returns CLI_FAIL otherwise. NULL path
 * passes. */
int cli_check_output(const char *flag, const char *path);
/* Reports that `eval --int8 path --compare` does not apply to an export with dynamic activations
 * (it has no QAT model to equal); returns CLI_FAIL. */
int cli_fail_dynamic_compare(const char *path);
/* The --gelu flag's value: "erf" (exact; *exact true) or "tanh"; anything else is a usage error
 * printed as "octet CMD: --gelu ..." (returns CLI_USAGE). */
int cli_gelu(const char *cmd, const char *value, bool *exact);
/* The --positions flag's value into cfg->rope and cfg->no_wpe: "learned" (neither),
 * "learned+rope" (rope) or "rope" (both); anything else is a usage error printed as
 * "octet CMD: --positions ..." (returns CLI_USAGE). */
struct oct_gpt_config;
int cli_positions(const char *cmd, const char *value, struct oct_gpt_config *cfg);
/* The --positions value of a model with these flags (no_wpe implies rope). */
const char *cli_positions_name(bool rope, bool no_wpe);
/* --layer-bits: copies value (NULL: none) into cfg->layer_bits and checks cfg; a value too long
 * or malformed is a usage error printed as "octet CMD: --layer-bits VALUE: reason". */
struct oct_qat_config;
int cli_layer_bits(const char *cmd, const char *value, struct oct_qat_config *cfg);
/* Both training commands' help for --confidence-penalty. */
#define CLI_PENALTY_HELP                                                                           \
    "train on the cross-entropy minus X times the entropy of the predictions, against "            \
    "over-confidence"
/* The help of the training commands' --weight-quant flag. */
#define CLI_WEIGHT_QUANT_HELP                                                                      \
    "--qat: weight quantizer: minmax, lsq, pow2 (powers of two, 2..4 bits) or kmeans (a codebook " \
    "of 2^bits int8 codes, 2..7 bits) (default: lsq when a layer has weights of 3 bits or fewer, " \
    "per channel; else minmax)"
/* The training commands' weight quantizer when --weight-quant is not given: "lsq" when a layer
 * has weights of 3 bits or fewer (--weight-bits weight_bits, --layer-bits layer_bits, NULL: none)
 * with one scale per channel (LSQ learns a step per channel; per_tensor: --per-tensor-weights);
 * else "minmax". */
const char *cli_default_weight_quant(int weight_bits, const char *layer_bits, bool per_tensor);
/* The quantization flags that `train gpt`, `train mlp` and `calibrate` share. */
typedef struct cli_quant {
    int weight_bits, act_bits, embed_bits; /* --weight-bits, --act-bits, --embed-bits (0: none) */
    bool per_tensor_weights;               /* --per-tensor-weights */
    const char *weight_quant;              /* a name oct_qat_wmode_parse takes */
    const char *act_quant;                 /* --act-quant: one mode, or one per point */
    const char *layer_bits;                /* --layer-bits, NULL: none */
} cli_quant;
/* Writes q into cfg (its other fields as the caller set them, from oct_qat_config_default on)
 * and checks the whole: a bad value is a usage error printed as "octet CMD: --FLAG: reason"
 * (--act-quant, --weight-quant, --layer-bits VALUE; the configuration's own message for a bad
 * combination), returning CLI_USAGE. */
int cli_qat_config(const char *cmd, const cli_quant *q, struct oct_qat_config *cfg);
/* The quantizers of cfg as text for a banner, into buf (n bytes; OCT_QAT_LAYER_BITS_LEN + 128
 * holds any): "8-bit weights (minmax), 8-bit activations (ema)". */
void cli_qat_desc(const struct oct_qat_config *cfg, char *buf, size_t n);
/* The label of a QAT model's figures, into buf (n bytes; 96 hold any) and returned: "QAT
 * (simulated int8)" when every weight, activation and embedding is 8-bit, else the widths, e.g.
 * "QAT (simulated 4-bit weights, 8-bit activations)". */
const char *cli_qat_label(const struct oct_qat_config *cfg, char *buf, size_t n);
/* Prints a QAT configuration or setup error, oct_last_error() without the library's "qat: " and
 * with the flag for a field it names ("--weight-bits 5: ..." for "qat: weight_bits 5: ..."), as
 * "octet CMD: FLAG: why", or "octet CMD: why" when it names its own flag or flag is NULL;
 * returns CLI_USAGE. */
int cli_qat_fail(const char *cmd, const char *flag);
/* cli_qat_config for a training command, which refuses the calibration-only quantizers (weights
 * mse, activations hist) with a usage error printed as "octet CMD: --weight-quant mse: ...". */
int cli_train_quant(const char *cmd, const cli_quant *q, struct oct_qat_config *cfg);
/* CLI_OK when loss is finite and so is every parameter of p; else prints that training
 * diverged `where` ("in epoch 3", "at step 1200"), naming the loss or the first parameter holding a
 * non-finite value, and returns CLI_FAIL (the caller saves nothing). */
struct oct_params;
int cli_check_diverged(const struct oct_params *p, double loss, const char *where);
/* The size of the file at path in bytes, -1 if it cannot be read (for summary lines). */
long long cli_file_size(const char *path);
/* A tensor shape as text, "(3, 4)" ("()" for a scalar), into buf (n bytes). */
void cli_shape_str(int ndim, const int *shape, char *buf, size_t n);
/* Fails (one line, CLI_USAGE) when the output `path` of `flag` is the same file as one of the
 * inputs (or other outputs), given as (flag, path) pairs ending with a NULL flag (NULL paths
 * skipped): the run would overwrite what it reads. Existing files compare by inode, files that
 * do not exist yet by their absolute paths. */
int cli_check_not_input(const char *flag, const char *path, ...);
/* The same against the IDX files of the data directory dir (NULL passes). */
int cli_check_not_data(const char *flag, const char *path, const char *dir);
/* The same for a --log file, which is appended to or truncated in place (so /dev/null is fine):
 * only the directory is checked. */
int cli_check_log(const char *path);

/* What an opened safetensors file holds, for errors: "an int8 MLP export", "an fp32 GPT
 * model", "a QAT MLP model", ..., or "no octet model (no octet.model or octet.format
 * metadata)". */
const char *cli_file_kind(const oct_st_file *f);

/* True if the safetensors file at path opens and its metadata key equals value (false for
 * files that cannot be opened: loading them reports why). */
bool cli_file_meta_is(const char *path, const char *key, const char *value);

/* Makes SIGINT, SIGTERM and SIGHUP remove the temporary file of a model being written
 * (oct_st_pending_temp) before the process dies of them as before (an ignored one stays
 * ignored). Called once, first thing in main. */
void cli_catch_signals(void);

/* Sets the thread count for OpenBLAS and octet's own kernels. */
void cli_set_threads(int threads);
/* The OpenBLAS kernel family in use ("Cooperlake", "Haswell", ...), for logs and benchmarks. */
const char *cli_blas_core(void);

#endif
