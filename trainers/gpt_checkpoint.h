/* Checkpoints of `octet train gpt`: a model file (what gpt_model_save writes, so eval, export
 * and generate read it) plus what continuing the run needs: the optimizer's state (tensors
 * "optim/<state name>") and metadata octet.train.args (the command line, a JSON array) and
 * octet.train.state (a JSON object: steps done, the optimizer's step count, the states of the
 * run's random generators, the size and crc32 of the training text, and the run's options as
 * resolved by the octet that wrote it, so a resume under other defaults is refused). */
#ifndef OCTET_TRAINERS_GPT_CHECKPOINT_H
#define OCTET_TRAINERS_GPT_CHECKPOINT_H

#include "gpt_model.h"
#include "octet/optim.h"

/* The batch windows' generator and one per data-parallel graph (dropout masks). */
#define GPT_RUN_MAX_RNG (2 * OCT_DP_MAX_SHARDS + 1)

/* Room for the run's resolved options. */
#define GPT_RUN_OPTIONS 4096

/* Where a run stands, beyond the model and the optimizer. */
typedef struct gpt_run {
    int step;                      /* steps done */
    char options[GPT_RUN_OPTIONS]; /* the run's options after defaults ("" when not recorded) */
    int n_rng;
    oct_rng rng[GPT_RUN_MAX_RNG];
    int64_t text_n;    /* tokens of the training text */
    uint32_t text_crc; /* crc32 of its tokens */
    double loss_sum;   /* the training losses of the steps since the last validation, */
    int loss_n;        /* and their count (its "train loss" is their mean) */
} gpt_run;

/* The size and crc32 of text into run. */
void gpt_run_text(gpt_run *run, const oct_text *text);

/* True when the options rec recorded in a checkpoint equal this octet's, now (both "--x=v"
 * items separated by spaces, in flag-table order), except for items of now that rec does not
 * name and that are off ("--x=-", an unset string flag, or "--x=false"): a flag added since,
 * left off, changes nothing. Otherwise the first item that differs goes into diff (n bytes) as
 * "x (this octet: y)". */
bool gpt_run_options_match(const char *rec, const char *now, char *diff, size_t n);

/* Writes the checkpoint atomically: m, opt's state, run and the command line (argc strings). */
oct_status gpt_checkpoint_save(const char *path, const gpt_model *m, const oct_optim *opt,
                               const gpt_run *run, int argc, char *const *argv);

/* Whether the command line (argc strings) can be recorded in the checkpoint at path: else
 * OCT_EINVAL and one line naming the argument that is not valid UTF-8 (JSON strings are), as
 * --resume could not read it back. Checked before a run starts. */
oct_status gpt_checkpoint_check_args(const char *path, int argc, char *const *argv);

/* The command line stored in the checkpoint at path, as a malloc'd array of argc malloc'd
 * strings (release with gpt_checkpoint_free_args). OCT_EFORMAT for a file that is not a
 * checkpoint. */
oct_status gpt_checkpoint_args(const char *path, int *argc, char ***argv);
void gpt_checkpoint_free_args(int argc, char **argv);

/* Reads the optimizer state (opt initialized for the checkpoint's model) and the run from the
 * checkpoint at path. Errors name the file and what is missing, malformed or not finite. */
oct_status gpt_checkpoint_restore(const char *path, oct_optim *opt, gpt_run *run);
/* The steps done that the checkpoint at path records, and into *steps the run's --steps (0 when
 * not recorded); -1 when path is no readable checkpoint (missing, another kind of file). Reads
 * the header alone. */
int gpt_checkpoint_step(const char *path, int *steps);

#endif
