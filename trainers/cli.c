/* Flag parsing, help text, progress bar and metrics log for the `octet` command. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "octet/data.h"
#include "octet/int8.h"
#include "octet/io.h"
#include "octet/qat.h"
#include "octet/status.h"

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_fail(const char *msg) {
    if (!msg) msg = *oct_last_error() ? oct_last_error() : "unknown error";
    fprintf(stderr, "octet: %s\n", msg);
    return CLI_FAIL;
}

/* The value of f as text (floats with float_fmt); false for an unset string. */
static bool flag_value(const cli_flag *f, const char *float_fmt, char *buf, size_t n) {
    switch (f->kind) {
    case CLI_INT:
        snprintf(buf, n, "%d", *(int *)f->dst);
        return true;
    case CLI_FLOAT:
        snprintf(buf, n, float_fmt, (double)*(float *)f->dst);
        return true;
    case CLI_STR:
        if (!*(const char **)f->dst) return false;
        snprintf(buf, n, "%s", *(const char **)f->dst);
        return true;
    case CLI_BOOL:
        snprintf(buf, n, "%s", *(bool *)f->dst ? "true" : "false");
        return true;
    case CLI_INTS: {
        const cli_ints *v = f->dst;
        size_t len = 0;
        buf[0] = '\0';
        for (int i = 0; i < v->n && len < n; i++)
            len += (size_t)snprintf(buf + len, n - len, i ? ",%d" : "%d", v->v[i]);
        return true;
    }
    }
    return false;
}

bool cli_flag_listed(const char *list, const char *name) {
    char padded[64];
    snprintf(padded, sizeof padded, " %s ", name);
    return strstr(list, padded) != NULL;
}

int cli_values(const cli_cmd *cmd, const char *skip, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < cmd->n_flags; i++) {
        const cli_flag *f = &cmd->flags[i];
        char value[512];
        if (cli_flag_listed(skip, f->name)) continue;
        if (!flag_value(f, "%.9g", value, sizeof value)) snprintf(value, sizeof value, "-");
        int k = snprintf(buf + len, n - len, "%s%s=%s", len ? " " : "", f->name, value);
        if (k < 0 || (size_t)k >= n - len) return -1;
        len += (size_t)k;
    }
    return (int)len;
}

/* The string flags whose value is a file, shown as FILE in help. */
#define CLI_FILE_FLAGS                                                                             \
    " -o --log --save --from --checkpoint --resume --int8 --compare --text --labels "

void cli_print_help(const cli_cmd *cmd, FILE *out) {
    fprintf(out, "usage: octet %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->n_flags) fprintf(out, "\nflags:\n");
    for (int i = 0; i < cmd->n_flags; i++) {
        const cli_flag *f = &cmd->flags[i];
        static const char *meta[] = {" N", " X", " S", "", " N,N,..."};
        const char *m = meta[f->kind];
        if (f->kind == CLI_STR && cli_flag_listed(CLI_FILE_FLAGS, f->name)) m = " FILE";
        if (f->kind == CLI_STR && !strcmp(f->name, "--data")) m = " DIR";
        char head[64];
        snprintf(head, sizeof head, "%s%s", f->name, m);
        char value[512];
        fprintf(out, "  %-24s %s", head, f->help);
        if (f->kind != CLI_BOOL && flag_value(f, "%g", value, sizeof value)) {
            fputs(" (default ", out);
            for (const char *c = value; *c; c++) /* a newline as \n, not a line break */
                if (*c == '\n')
                    fputs("\\n", out);
                else if ((unsigned char)*c < 0x20)
                    fprintf(out, "\\x%02x", (unsigned char)*c);
                else
                    fputc(*c, out);
            fputc(')', out);
        }
        fputc('\n', out);
    }
    fprintf(out, "  %-24s %s\n", "-h, --help", "show this help");
}

/* Set while cli_parse_recorded runs: what the arguments are, which its errors name. */
static const char *recorded_context;

static int usage_error(const cli_cmd *cmd, const char *flag, const char *what, const char *got) {
    if (recorded_context)
        fprintf(stderr, "octet: %s are invalid: %s: %s%s%s%s\n", recorded_context, flag, what,
                got ? ", got '" : "", got ? got : "", got ? "'" : "");
    else if (got)
        fprintf(stderr, "octet %s: %s: %s, got '%s' (see octet %s --help)\n", cmd->name, flag, what,
                got, cmd->name);
    else
        fprintf(stderr, "octet %s: %s: %s (see octet %s --help)\n", cmd->name, flag, what,
                cmd->name);
    return CLI_USAGE;
}

static bool parse_number(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}

static int set_flag(const cli_cmd *cmd, const cli_flag *f, const char *val) {
    char what[96];
    double v;
    switch (f->kind) {
    case CLI_INT:
    case CLI_FLOAT:
        if (!parse_number(val, &v) || (f->kind == CLI_INT && v != floor(v)) || v < f->min ||
            v > f->max) {
            if (f->kind == CLI_INT)
                snprintf(what, sizeof what, "expected an integer in [%.0f, %.0f]", f->min, f->max);
            else
                snprintf(what, sizeof what, "expected a number in [%g, %g]", f->min, f->max);
            return usage_error(cmd, f->name, what, val);
        }
        if (f->kind == CLI_INT)
            *(int *)f->dst = (int)v;
        else
            *(float *)f->dst = (float)v;
        return CLI_OK;
    case CLI_STR:
        if (!*val) return usage_error(cmd, f->name, "expected a non-empty value", NULL);
        *(const char **)f->dst = val;
        return CLI_OK;
    case CLI_BOOL:
        *(bool *)f->dst = true;
        return CLI_OK;
    case CLI_INTS: {
        cli_ints list = {0};
        const char *p = val;
        while (*p) {
            char *end;
            errno = 0;
            long x = strtol(p, &end, 10);
            if (end == p || errno || x < f->min || x > f->max || list.n == CLI_MAX_INTS ||
                (*end && (*end != ',' || !end[1]))) {
                snprintf(what, sizeof what,
                         "expected up to %d comma-separated integers in [%.0f, %.0f]", CLI_MAX_INTS,
                         f->min, f->max);
                return usage_error(cmd, f->name, what, val);
            }
            list.v[list.n++] = (int)x;
            p = *end ? end + 1 : end;
        }
        if (list.n == 0) return usage_error(cmd, f->name, "expected a list of integers", val);
        *(cli_ints *)f->dst = list;
        return CLI_OK;
    }
    }
    return CLI_USAGE;
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, const char **pos, int *n_pos) {
    return cli_parse_seen(cmd, argc, argv, pos, n_pos, NULL);
}

int cli_parse_seen(const cli_cmd *cmd, int argc, char **argv, const char **pos, int *n_pos,
                   bool *seen) {
    *n_pos = 0;
    for (int j = 0; seen && j < cmd->n_flags; j++) seen[j] = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            if (recorded_context) return usage_error(cmd, a, "a request for help", NULL);
            cli_print_help(cmd, stdout);
            return CLI_HELP;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (*n_pos >= cmd->max_pos) return usage_error(cmd, a, "unexpected argument", NULL);
            pos[(*n_pos)++] = a;
            continue;
        }
        char name[64];
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name) return usage_error(cmd, a, "unknown flag", NULL);
        memcpy(name, a, len);
        name[len] = '\0';
        const cli_flag *f = NULL;
        for (int j = 0; j < cmd->n_flags && !f; j++)
            if (!strcmp(cmd->flags[j].name, name)) f = &cmd->flags[j];
        if (!f) return usage_error(cmd, name, "unknown flag", NULL);
        const char *val = "";
        if (f->kind == CLI_BOOL) {
            if (eq) return usage_error(cmd, name, "takes no value", eq + 1);
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return usage_error(cmd, name, "missing value", NULL);
        }
        int rc = set_flag(cmd, f, val);
        if (rc != CLI_OK) return rc;
        if (seen) seen[f - cmd->flags] = true;
    }
    if (*n_pos < cmd->min_pos) {
        fprintf(stderr, "octet %s: %d argument%s given, %d expected: octet %s %s\n", cmd->name,
                *n_pos, *n_pos == 1 ? "" : "s", cmd->min_pos, cmd->name, cmd->usage);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_parse_recorded(const cli_cmd *cmd, const char *context, int argc, char **argv, bool *seen) {
    const char *pos[1];
    int n_pos;
    recorded_context = context;
    int rc = cli_parse_seen(cmd, argc, argv, pos, &n_pos, seen);
    recorded_context = NULL;
    return rc == CLI_OK ? CLI_OK : CLI_FAIL;
}

void cli_progress_begin(cli_progress *p, const char *label, int64_t total, const char *unit) {
    p->label = label;
    p->total = total;
    p->t0 = p->last_print = cli_now();
    p->tty = isatty(2);
    p->unit = unit;
    p->start = p->step = p->shown = 0;
}

static void fmt_time(double s, char *buf, size_t n) {
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

/* Draws p's last update. */
static void progress_draw(cli_progress *p, double now) {
    int64_t step = p->step;
    float loss = p->loss;
    double items = p->items;
    p->last_print = now;
    p->shown = step;
    double el = now - p->t0;
    double rate = el > 0 ? items / el : 0;
    double eta = step > p->start ? el * (double)(p->total - step) / (double)(step - p->start) : 0;
    char eta_s[16], el_s[16];
    fmt_time(eta, eta_s, sizeof eta_s);
    fmt_time(el, el_s, sizeof el_s);
    char loss_s[32] = "";
    if (!isnan(loss)) snprintf(loss_s, sizeof loss_s, " loss %.4f", (double)loss);
    if (p->tty) {
        int width = 24, fill = (int)(width * step / (p->total ? p->total : 1));
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] %lld/%lld%s %.0f %s %s ETA %s\033[K", p->label, bar,
                (long long)step, (long long)p->total, loss_s, rate, p->unit, el_s, eta_s);
    } else {
        fprintf(stderr, "%s %lld/%lld%s %.0f %s elapsed %s ETA %s\n", p->label, (long long)step,
                (long long)p->total, loss_s, rate, p->unit, el_s, eta_s);
    }
}

void cli_progress_update(cli_progress *p, int64_t step, float loss, double items) {
    p->step = step;
    p->loss = loss;
    p->items = items;
    double now = cli_now();
    if (step >= p->total || now - p->last_print >= (p->tty ? 0.1 : 5.0)) progress_draw(p, now);
}

void cli_progress_end(cli_progress *p) {
    if (!p->tty || !p->shown) return; /* lines are complete; nothing drawn */
    if (p->shown != p->step)
        progress_draw(p, cli_now()); /* the bar as it ends, not as last drawn */
    fputc('\n', stderr);
    p->shown = 0;
}

int cli_log_open(cli_log *l, const char *path, bool append) {
    l->path = path;
    l->f = NULL;
    l->failed = false;
    if (!path) return CLI_OK;
    /* Non-blocking, so that a FIFO nobody reads fails (ENXIO) instead of waiting for a reader;
     * blocking again once open. */
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | (append ? O_APPEND : O_TRUNC),
                  0666);
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
            !(l->f = fdopen(fd, append ? "a" : "w")))
            close(fd);
    }
    if (!l->f) {
        fprintf(stderr, "octet: --log %s: cannot open for writing: %s\n", path,
                errno == ENXIO ? "a FIFO with no reader" : strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* Reports the first record the log could not take (why: "write failed: <error>") and stops
 * logging; the run goes on, and cli_log_close reports the failure. */
static void log_failed(cli_log *l, const char *why) {
    fprintf(stderr, "octet: --log %s: %s; the run goes on without its log\n", l->path, why);
    fclose(l->f);
    l->f = NULL;
    l->failed = true;
}

void cli_log_write(cli_log *l, json_t *obj) {
    if (l->f && !obj) {
        log_failed(l, "a record could not be built (a value that is not valid UTF-8?)");
    } else if (l->f) {
        errno = 0;
        if (json_dumpf(obj, l->f, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8)) ||
            fputc('\n', l->f) == EOF || fflush(l->f) == EOF) {
            char why[128];
            snprintf(why, sizeof why, "write failed: %s", strerror(errno ? errno : EIO));
            log_failed(l, why);
        }
    }
    json_decref(obj);
}

int cli_log_close(cli_log *l) {
    if (l->f && fclose(l->f) != 0) {
        fprintf(stderr, "octet: --log %s: write failed: %s\n", l->path, strerror(errno));
        l->failed = true;
    }
    l->f = NULL;
    return l->failed ? CLI_FAIL : CLI_OK;
}

/* Removes the temporary file of a write in progress, then dies of sig as without a handler. */
static void die_of_signal(int sig) {
    const char *tmp = oct_st_pending_temp();
    if (tmp) unlink(tmp);
    signal(sig, SIG_DFL); /* already so (SA_RESETHAND); raise() delivers it on return at latest */
    raise(sig);
}

void cli_catch_signals(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa = {0};
        /* an ignored signal stays ignored (SIGINT in a job started in the background) */
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler == SIG_IGN) continue;
        sa.sa_handler = die_of_signal;
        sa.sa_flags = SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

char *cli_take(char **p) {
    char *v = *p;
    *p = NULL;
    return v;
}

static char *planned_path(const char *path);

char *cli_abs_path(const char *path) {
    char *abs = planned_path(path); /* its directory resolved: no "..", no links */
    if (abs || path[0] == '/') return abs ? abs : strdup(path);
    char *cwd = getcwd(NULL, 0);   /* a directory that does not exist (yet) */
    if (!cwd) return strdup(path); /* no working directory: left as given */
    size_t len = strlen(cwd) + strlen(path) + 2;
    abs = malloc(len);
    if (abs) snprintf(abs, len, "%s/%s", cwd, path);
    free(cwd);
    return abs;
}

char *cli_source_record(const char *path) {
    char *abs = realpath(path, NULL);
    if (!abs) abs = strdup(path);
    json_t *utf8 = abs ? json_string(abs) : NULL; /* NULL: not valid UTF-8 */
    bool control = false;
    for (const char *c = abs; c && *c; c++) control = control || (unsigned char)*c < 0x20;
    if (!utf8 || control) { /* a model file's metadata is UTF-8, and errors are one line */
        free(abs);
        abs = NULL;
    }
    json_decref(utf8);
    return abs;
}

char *cli_meta_dup(const oct_st_file *f, const char *key) {
    const char *v = oct_st_meta(f, key);
    return v ? strdup(v) : NULL;
}

int cli_file_source(const char *path, const char *flag, char **source) {
    *source = NULL;
    oct_st_file f;
    if (oct_st_open_header(&f, path) != OCT_OK) return CLI_OK;
    *source = cli_meta_dup(&f, CLI_META_SOURCE);
    oct_st_close(&f);
    if (!*source || !strcmp(*source, OCT_DEFAULT_TEXT) || access(*source, R_OK) == 0) return CLI_OK;
    fprintf(stderr, "octet: %s was trained on %s, which cannot be read (%s): give %s\n", path,
            *source, strerror(errno), flag);
    free(*source);
    *source = NULL;
    return CLI_FAIL;
}

bool cli_file_meta_is(const char *path, const char *key, const char *value) {
    oct_st_file f;
    if (oct_st_open_header(&f, path) != OCT_OK) return false;
    const char *v = oct_st_meta(&f, key);
    bool yes = v && !strcmp(v, value);
    oct_st_close(&f);
    return yes;
}

const char *cli_file_kind(const oct_st_file *f) {
    const char *fmt = oct_st_meta(f, "octet.format"), *kind = oct_st_meta(f, "octet.model");
    bool qat = oct_st_meta(f, "octet.qat") != NULL;
    if (fmt && !strcmp(fmt, OCT_I8_FORMAT)) return "an int8 MLP export";
    if (fmt && !strcmp(fmt, OCT_I8_GPT_FORMAT)) return "an int8 GPT export";
    if (kind && !strcmp(kind, "mlp")) return qat ? "a QAT MLP model" : "an fp32 MLP model";
    if (kind && !strcmp(kind, "gpt")) return qat ? "a QAT GPT model" : "an fp32 GPT model";
    return "no octet model (no octet.model or octet.format metadata; `octet import` converts a "
           "PyTorch state dict)";
}

/* Whether the directory of path takes new files; else prints why. */
static int check_dir(const char *flag, const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;
    if (len >= sizeof dir) len = sizeof dir - 1;
    memcpy(dir, path, len);
    dir[len] = '\0';
    if (!slash) strcpy(dir, ".");
    if (slash == path) strcpy(dir, "/");
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "octet: %s %s: cannot write into directory %s: %s\n", flag, path, dir,
                strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
}

int cli_check_output(const char *flag, const char *path) {
    if (!path) return CLI_OK;
    if (check_dir(flag, path) != CLI_OK) return CLI_FAIL;
    struct stat st; /* a file written atomically replaces the old one: not a device or FIFO */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "octet: %s %s: exists and is not a regular file\n", flag, path);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* The absolute path of a file that may not exist yet: its directory resolved, then its name;
 * NULL when the directory cannot be resolved (malloc'd). */
static char *planned_path(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    char *abs = dir ? realpath(dir, NULL) : NULL, *out = NULL;
    const char *name = slash ? slash + 1 : path;
    if (abs && asprintf(&out, "%s/%s", abs, name) < 0) out = NULL;
    free(dir);
    free(abs);
    return out;
}

bool cli_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    bool ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea || eb) return false;
    char *pa = planned_path(a), *pb = planned_path(b);
    bool same = pa && pb && !strcmp(pa, pb);
    free(pa);
    free(pb);
    return same;
}

int cli_check_not_input(const char *flag, const char *path, ...) {
    if (!path) return CLI_OK;
    va_list ap;
    va_start(ap, path);
    const char *in_flag, *in_path = NULL;
    while ((in_flag = va_arg(ap, const char *)) != NULL) {
        in_path = va_arg(ap, const char *);
        if (in_path && cli_same_file(path, in_path)) break;
    }
    va_end(ap);
    if (!in_flag) return CLI_OK;
    fprintf(stderr, "octet: %s %s: the same file as %s %s, which it would overwrite\n", flag, path,
            in_flag, in_path);
    return CLI_USAGE;
}

int cli_check_not_data(const char *flag, const char *path, const char *dir) {
    static const char *const names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    if (!path || !dir) return CLI_OK;
    for (size_t i = 0; i < 2 * sizeof names / sizeof names[0]; i++) {
        char in[4200];
        snprintf(in, sizeof in, "%s/%s%s", dir, names[i / 2], i % 2 ? ".gz" : "");
        int rc = cli_check_not_input(flag, path, "a file of --data", in, NULL);
        if (rc != CLI_OK) return rc;
    }
    return CLI_OK;
}

int cli_check_log(const char *path) {
    return path ? check_dir("--log", path) : CLI_OK;
}

void cli_set_threads(int threads) {
    openblas_set_num_threads(threads);
}

const char *cli_blas_core(void) {
    return openblas_get_corename();
}

int cli_fail_dynamic_compare(const char *path) {
    fprintf(stderr,
            "octet: --compare: %s has dynamic activations; --compare checks a static export "
            "against the QAT model it came from, bit for bit\n",
            path);
    return CLI_FAIL;
}

int cli_gelu(const char *cmd, const char *value, bool *exact) {
    *exact = !strcmp(value, "erf");
    if (*exact || !strcmp(value, "tanh")) return CLI_OK;
    fprintf(stderr, "octet %s: --gelu '%s': expected tanh or erf\n", cmd, value);
    return CLI_USAGE;
}

int cli_positions(const char *cmd, const char *value, oct_gpt_config *cfg) {
    for (int k = 0; k < 3; k++)
        if (!strcmp(value, cli_positions_name(k > 0, k > 1))) {
            cfg->rope = k > 0;
            cfg->no_wpe = k > 1;
            return CLI_OK;
        }
    fprintf(stderr, "octet %s: --positions '%s': expected learned, learned+rope or rope\n", cmd,
            value);
    return CLI_USAGE;
}

const char *cli_positions_name(bool rope, bool no_wpe) {
    return no_wpe ? "rope" : rope ? "learned+rope" : "learned";
}

int cli_layer_bits(const char *cmd, const char *value, oct_qat_config *cfg) {
    if (!value) return CLI_OK;
    if (strlen(value) >= sizeof cfg->layer_bits) {
        fprintf(stderr, "octet %s: --layer-bits: longer than %zu characters\n", cmd,
                sizeof cfg->layer_bits - 1);
        return CLI_USAGE;
    }
    strcpy(cfg->layer_bits, value);
    if (oct_qat_config_check(cfg) == OCT_OK) return CLI_OK;
    char flag[sizeof cfg->layer_bits + 16];
    snprintf(flag, sizeof flag, "--layer-bits %s", value);
    return cli_qat_fail(cmd, flag);
}

bool cli_given(const cli_cmd *cmd, const bool *seen, const char *name) {
    for (int i = 0; i < cmd->n_flags; i++)
        if (!strcmp(cmd->flags[i].name, name)) return seen[i];
    return false;
}

const char *cli_first_given(const cli_cmd *cmd, const bool *seen, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (cli_given(cmd, seen, names[i])) return names[i];
    return NULL;
}

/* The widest weights for which LSQ is the default. Measured, 600 QAT steps from the default fp32
 * GPT (1.1710 nats/char; int8 embeddings, each at its best lr: min-max 3e-3 at 2 bits and 1e-3 at
 * 3, lsq 1e-3 at both, 1e-4 at 4): lsq 1.2616 at 2 bits and 1.1934 at 3 against min-max's 1.6189
 * and 1.2204, but 1.1874 at 4 against 1.1779. The default MLP recipe, mean of seeds 1-3: lsq
 * 89.24% at 2 bits against 88.49%, a tie at 3 and 4 bits (89.43% and 89.55% against 89.40% and
 * 89.50%), and 89.26% at 8 bits against 89.45%. */
#define CLI_LSQ_BITS 3

const char *cli_default_weight_quant(int weight_bits, const char *layer_bits, bool per_tensor) {
    oct_qat_config cfg;
    oct_qat_config_default(&cfg);
    cfg.weight_bits = weight_bits;
    if (layer_bits) /* a malformed value is reported by cli_layer_bits */
        snprintf(cfg.layer_bits, sizeof cfg.layer_bits, "%s", layer_bits);
    return !per_tensor && oct_qat_config_min_weight_bits(&cfg) <= CLI_LSQ_BITS ? "lsq" : "minmax";
}

/* oct_last_error() of a QAT configuration for the command line (see cli_qat_fail). */
static const char *cli_qat_error(void) {
    static const char *const field[][2] = {{"qat: weight_bits ", "--weight-bits "},
                                           {"qat: act_bits ", "--act-bits "},
                                           {"qat: embed_bits ", "--embed-bits "},
                                           {"qat: freeze_after ", "--freeze-after "},
                                           {"qat: layer bits ", "--layer-bits "},
                                           {"qat: activation quantizers: ", "--act-quant: "},
                                           {"qat: per-tensor weights: ", "--per-tensor-weights: "},
                                           {"qat: ", ""}};
    static _Thread_local char buf[1200];
    const char *msg = oct_last_error();
    for (size_t i = 0; i < sizeof field / sizeof field[0]; i++) {
        size_t len = strlen(field[i][0]);
        if (strncmp(msg, field[i][0], len)) continue;
        snprintf(buf, sizeof buf, "%s%s", field[i][1], msg + len);
        return buf;
    }
    return msg;
}

int cli_qat_config(const char *cmd, const cli_quant *q, oct_qat_config *cfg) {
    cfg->weight_bits = q->weight_bits;
    cfg->act_bits = q->act_bits;
    cfg->embed_bits = q->embed_bits;
    cfg->per_tensor_weights = q->per_tensor_weights;
    const char *flag = NULL;
    if (oct_qat_amodes_parse(q->act_quant, cfg))
        flag = "--act-quant";
    else if (oct_qat_wmode_parse(q->weight_quant, &cfg->weight_mode))
        flag = "--weight-quant";
    else if (oct_qat_config_check(cfg) == OCT_OK)
        return cli_layer_bits(cmd, q->layer_bits, cfg);
    return cli_qat_fail(cmd, flag);
}

int cli_qat_fail(const char *cmd, const char *flag) {
    const char *why = cli_qat_error();
    if (!flag || !strncmp(why, "--", 2)) /* it names its own flag */
        fprintf(stderr, "octet %s: %s\n", cmd, why);
    else
        fprintf(stderr, "octet %s: %s: %s\n", cmd, flag, why);
    return CLI_USAGE;
}

void cli_qat_desc(const oct_qat_config *cfg, char *buf, size_t n) {
    char acts[64] = "";
    for (int i = 0; i < cfg->n_act_modes; i++) {
        size_t len = strlen(acts);
        snprintf(acts + len, sizeof acts - len, "%s%s", i ? "," : "",
                 oct_qat_amode_name(cfg->act_mode[i]));
    }
    snprintf(buf, n, "%d-bit%s weights (%s%s%s), %d-bit activations (%s)", cfg->weight_bits,
             cfg->per_tensor_weights ? " per-tensor" : "", oct_qat_wmode_name(cfg->weight_mode),
             cfg->layer_bits[0] ? ", " : "", cfg->layer_bits, cfg->act_bits, acts);
}

const char *cli_qat_label(const oct_qat_config *cfg, char *buf, size_t n) {
    int w = oct_qat_config_min_weight_bits(cfg), e = cfg->embed_bits;
    char emb[32] = "";
    if (e && e != 8) snprintf(emb, sizeof emb, ", %d-bit embeddings", e);
    if (w == 8 && cfg->act_bits == 8 && !emb[0])
        snprintf(buf, n, "QAT (simulated int8)");
    else
        snprintf(buf, n, "QAT (simulated %s%d-bit weights, %d-bit activations%s)",
                 cfg->layer_bits[0] ? "at least " : "", w, cfg->act_bits, emb);
    return buf;
}

int cli_train_quant(const char *cmd, const cli_quant *q, oct_qat_config *cfg) {
    bool mse = !strcmp(q->weight_quant, "mse");
    int rc = mse ? CLI_USAGE : cli_qat_config(cmd, q, cfg);
    const char *calib = mse ? "--weight-quant mse" : NULL;
    for (int i = 0; !rc && i < cfg->n_act_modes; i++)
        if (cfg->act_mode[i] == OCT_QAT_A_HIST) calib = "--act-quant hist";
    if (!calib) return rc;
    fprintf(stderr,
            "octet %s: %s: only for `octet calibrate` (post-training); QAT learns its "
            "clipping with --weight-quant lsq and --act-quant lsq or pact\n",
            cmd, calib);
    return CLI_USAGE;
}

int cli_check_diverged(const oct_params *p, double loss, const char *where) {
    const char *bad = isfinite(loss) ? NULL : "loss";
    for (int i = 0; !bad && i < p->n; i++)
        for (int64_t k = 0; k < p->items[i]->size; k++)
            if (!isfinite(p->items[i]->data[k])) {
                bad = p->items[i]->name;
                break;
            }
    if (!bad) return CLI_OK;
    fprintf(stderr,
            "octet: training diverged %s (%s %s): nothing saved; try a lower --lr or "
            "--clip\n",
            where, !strcmp(bad, "loss") ? "a loss of" : "non-finite values in",
            !strcmp(bad, "loss") ? (isnan(loss) ? "nan" : "inf") : bad);
    return CLI_FAIL;
}

long long cli_file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

void cli_shape_str(int ndim, const int *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %d" : "%d", shape[d]);
    if (k < n) snprintf(buf + k, n - k, ")");
}
