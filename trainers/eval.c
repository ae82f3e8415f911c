/* `octet eval MODEL`: accuracy and loss of a saved MLP on the test set, or validation loss of a
 * GPT; `octet eval --int8 FILE`: the same for an exported integer model (int8_model.c,
 * gpt_int8.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt_int8.h"
#include "gpt_model.h"
#include "int8_model.h"
#include "mlp_model.h"

/* `octet eval MODEL` for an fp32 or QAT MLP: test accuracy and loss on the data in dir. */
static int mlp_eval_file(const char *path, const char *data, int threads) {
    cli_set_threads(threads);
    mlp_model m;
    if (mlp_model_load(&m, path)) return cli_fail(NULL);
    oct_image_set test;
    if (oct_image_set_load_dir(&test, data, false)) {
        mlp_model_free(&m);
        return cli_fail(NULL);
    }
    int rc = CLI_OK;
    if (mlp_data_check(path, m.mlp.sizes[0], m.mlp.sizes[m.mlp.n_layers], &test, "test", data)) {
        rc = cli_fail(NULL);
    } else {
        oct_graph g;
        oct_graph_init(&g, 0, 0);
        mlp_eval ev = mlp_model_evaluate(&m, &g, &test);
        char label[96] = "";
        if (m.qat) cli_qat_label(&m.qat->cfg, label, sizeof label);
        printf("%s: %s%stest accuracy %.2f%%  loss %.4f  (%lld images, %.3f s)\n", path, label,
               label[0] ? " " : "", 100 * ev.accuracy, ev.loss, (long long)test.n, ev.seconds);
        oct_graph_free(&g);
    }
    oct_image_set_free(&test);
    mlp_model_free(&m);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *data = OCT_FASHION_MNIST_DIR;
    int threads = 1, batch = 256;
    const char *int8_path = NULL, *kernel = "auto", *compare = NULL, *text = OCT_DEFAULT_TEXT;
    int eval_batches = GPT_EVAL_BATCHES, windows = GPT_EVAL_WINDOWS;
    int stride = 0;
    bool full = false;
    const cli_flag flags[] = {
        {"--data", CLI_STR, &data,
         "MLP: directory with the IDX files (unset: the model's own, else this)", 0, 0},
        {"--threads", CLI_INT, &threads, "threads", 1, 256},
        {"--int8", CLI_STR, &int8_path, "evaluate this int8 export (from octet export) instead", 0,
         0},
        {"--batch", CLI_INT, &batch, "images per int8 engine call (--int8)", 1, 65536},
        {"--compare", CLI_STR, &compare,
         "with --int8: check the logits against this QAT model, bit for bit", 0, 0},
        {"--kernel", CLI_STR, &kernel, "int8 GEMM kernel: auto|portable|avx2|avx512vnni (--int8)",
         0, 0},
        {"--text", CLI_STR, &text,
         "GPT: text whose last 10% is the validation split (unset: the model's own, else this)", 0,
         0},
        {"--eval-batches", CLI_INT, &eval_batches, "GPT: validation batches", 1, 1e6},
        {"--windows", CLI_INT, &windows, "GPT: windows per validation batch", 1, 65536},
        {"--full", CLI_BOOL, &full,
         "GPT: the whole validation split in consecutive windows, instead of --eval-batches "
         "random batches",
         0, 0},
        {"--stride", CLI_INT, &stride,
         "GPT, implies --full: a window every N characters, 1 to the context, each scoring "
         "only the characters the one before did not reach (0, the default, means not given: "
         "--eval-batches random batches unless --full)",
         0, 65536},
    };
    cli_cmd cmd = {"eval",
                   "MODEL [flags]  |  octet eval --int8 FILE [flags]",
                   "Evaluates a saved MLP on the test split (accuracy and loss) or a GPT on the\n"
                   "validation split (nats and bits per character); an int8 export (as MODEL or\n"
                   "with --int8) the same way through the integer engine, with its speed.",
                   flags,
                   (int)(sizeof flags / sizeof flags[0]),
                   0,
                   1};
    const char *pos[1];
    bool seen[sizeof flags / sizeof flags[0]];
    int n_pos, rc = cli_parse_seen(&cmd, argc, argv, pos, &n_pos, seen);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    if ((n_pos == 1) == (int8_path != NULL)) {
        fprintf(stderr, "octet eval: give either MODEL or --int8 FILE (see octet eval --help)\n");
        return CLI_USAGE;
    }
    /* what the file is, from its header (read once; unreadable: the loader says why) */
    const char *path = int8_path ? int8_path : pos[0], *wrong = NULL;
    oct_st_file f;
    bool read = oct_st_open_header(&f, path) == OCT_OK;
    const char *fmt = read ? oct_st_meta(&f, "octet.format") : NULL;
    const char *kind = read ? oct_st_meta(&f, "octet.model") : NULL;
    bool i8_mlp = fmt && !strcmp(fmt, OCT_I8_FORMAT),
         i8_gpt = fmt && !strcmp(fmt, OCT_I8_GPT_FORMAT);
    if (i8_mlp || i8_gpt) int8_path = path; /* an int8 export given as MODEL: as with --int8 */
    if (int8_path && read && !i8_mlp && !i8_gpt) { /* --int8 of a model that is no export */
        fprintf(stderr, "octet: --int8 %s: %s, where an int8 export is expected%s\n", int8_path,
                cli_file_kind(&f), kind ? " (octet eval MODEL evaluates it)" : "");
        oct_st_close(&f);
        return CLI_FAIL;
    }
    bool gpt = int8_path ? i8_gpt : kind && !strcmp(kind, "gpt");
    bool mlp = int8_path ? i8_mlp : kind && !strcmp(kind, "mlp");
    if (read && !gpt && !mlp) { /* a PyTorch state dict or another program's file */
        fprintf(stderr, "octet: %s: %s, where an MLP or GPT model or an int8 export is expected\n",
                path, cli_file_kind(&f));
        oct_st_close(&f);
        return CLI_FAIL;
    }
    oct_st_close(&f);
    static const char *const gpt_only[] = {"--text", "--eval-batches", "--windows", "--full",
                                           "--stride"};
    static const char *const mlp_only[] = {"--data", "--batch"};
    static const char *const int8_only[] = {"--compare", "--kernel", "--batch"};
    if (gpt || mlp) /* else the loader says what the file is (unreadable, a state dict, ...) */
        wrong = gpt ? cli_first_given(&cmd, seen, mlp_only, 2)
                    : cli_first_given(&cmd, seen, gpt_only, 5);
    const char *usage = NULL;
    if (wrong)
        usage = gpt ? "an MLP flag, and this is a GPT" : "a GPT flag, and this is not a GPT";
    else if (!int8_path && (wrong = cli_first_given(&cmd, seen, int8_only, 3)))
        usage = "needs --int8 (an export run by the integer engine)";
    else if ((full || stride) && cli_given(&cmd, seen, "--eval-batches"))
        wrong = "--eval-batches", usage = "random batches, which --full and --stride replace";
    if (wrong) {
        fprintf(stderr, "octet eval: %s: %s (see octet eval --help)\n", wrong, usage);
        return CLI_USAGE;
    }
    if ((rc = int8_select_kernel("eval", kernel)) != CLI_OK) return rc;
    if (full || stride) eval_batches = 0; /* the whole split (gpt_model_evaluate) */
    /* without --text (--data), the data the model records that it was trained on */
    const char *flag = gpt ? "--text" : "--data";
    char *recorded = NULL;
    if (!cli_given(&cmd, seen, flag) && cli_file_source(path, flag, &recorded)) return CLI_FAIL;
    if (recorded && gpt) text = recorded;
    if (recorded && !gpt) data = recorded;
    if (int8_path && gpt)
        rc = gpt_int8_eval(int8_path, text, eval_batches, stride, windows, threads, compare);
    else if (int8_path)
        rc = int8_eval(int8_path, data, batch, threads, compare);
    else if (gpt)
        rc = gpt_model_eval(pos[0], text, eval_batches, stride, windows, threads);
    else
        rc = mlp_eval_file(pos[0], data, threads);
    free(recorded);
    return rc;
}
