/* `octet`: the command-line front end. Dispatches to one subcommand per file. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "octet/status.h"

typedef struct command {
    const char *word1, *word2; /* "train", "mlp" */
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", "mlp", cmd_train_mlp,
     "train an MLP on IDX images, Fashion-MNIST by default (fp32 or --qat)"},
    {"eval", NULL, cmd_eval, "evaluate a saved model (MLP: test set; GPT: validation split)"},
    {"train", "gpt", cmd_train_gpt, "train a character-level GPT on a text file"},
    {"generate", NULL, cmd_generate, "sample text from a saved GPT"},
    {"calibrate", NULL, cmd_calibrate,
     "post-training quantization: observe ranges of a fp32 MLP or GPT"},
    {"export", NULL, cmd_export,
     "export a QAT-trained MLP or GPT as int8 (any model: --dynamic, --float16, --torch)"},
    {"predict", NULL, cmd_predict, "classify images with an MLP (int8 export, QAT or fp32 model)"},
    {"inspect", NULL, cmd_inspect, "list the metadata, tensors and int8 layers of a file"},
    {"import", NULL, cmd_import,
     "convert a GPT or MLP trained in PyTorch (safetensors) to an octet model"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: octet <command> [args] [flags]\n\n"
                 "octet trains small networks under simulated INT8 (quantization-aware training)\n"
                 "and exports true integer models that run bit-exactly as they trained.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%s%s", commands[i].word1, commands[i].word2 ? " " : "",
                 commands[i].word2 ? commands[i].word2 : "");
        fprintf(out, "  %-16s %s\n", name, commands[i].summary);
    }
    fprintf(out, "\nRun 'octet <command> --help' (or 'octet help <command>') for the flags of a "
                 "command,\n'octet --version' for the version.\n");
}

/* `octet train --help`: the commands that start with word. */
static void usage_word(const char *word) {
    printf("usage: octet %s <kind> [args] [flags]\n\n", word);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].word1, word))
            printf("  %s %-10s %s\n", word, commands[i].word2, commands[i].summary);
    printf("\nRun 'octet %s <kind> --help' for the flags of a command.\n", word);
}

/* The library's out-of-memory hook: one line and exit 1 rather than an abort. It may run in a
 * worker thread: _exit, as exit() would run the libraries' teardown under the other threads. */
static void out_of_memory(size_t bytes) {
    fprintf(stderr,
            "octet: out of memory: could not allocate %zu bytes (try a smaller --batch, --windows "
            "or model)\n",
            bytes);
    fflush(stdout);
    _exit(CLI_FAIL);
}

static bool is_help(const char *a) {
    return !strcmp(a, "-h") || !strcmp(a, "--help");
}

int main(int argc, char **argv) {
    cli_catch_signals(); /* a ^C while a model is written leaves no temporary file */
    oct_set_oom_handler(out_of_memory);
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("octet %s\n", OCTET_VERSION);
        return CLI_OK;
    }
    char *help[4] = {argv[0]}; /* `octet help train gpt` is `octet train gpt --help` */
    if (!strcmp(argv[1], "help") && argc >= 3 && argc <= 4) {
        for (int i = 2; i < argc; i++) help[i - 1] = argv[i];
        help[argc - 1] = "--help";
        argv = help;
    } else if (is_help(argv[1]) || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    bool known_word = false;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const command *c = &commands[i];
        if (strcmp(argv[1], c->word1)) continue;
        known_word = true;
        if (!c->word2) return c->run(argc - 2, argv + 2);
        if (argc >= 3 && !strcmp(argv[2], c->word2)) return c->run(argc - 3, argv + 3);
    }
    if (known_word && argc == 3 && is_help(argv[2])) {
        usage_word(argv[1]);
        return CLI_OK;
    }
    if (known_word && argc >= 3 && argv[2][0] != '-')
        fprintf(stderr, "octet: unknown kind '%s %s' (see octet %s --help)\n", argv[1], argv[2],
                argv[1]);
    else if (known_word)
        fprintf(stderr, "octet: '%s' needs a model kind, e.g. 'octet %s mlp' (see octet --help)\n",
                argv[1], argv[1]);
    else
        fprintf(stderr, "octet: unknown command '%s' (see octet --help)\n", argv[1]);
    return CLI_USAGE;
}
