/* Status codes, the thread-local last-error message, the assertion and out-of-memory
 * handlers. */
#include "octet/status.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

static _Thread_local char last_error[512];

const char *oct_strerror(oct_status status) {
    switch (status) {
#define OCT__STATUS_CASE(name, value, desc)                                                        \
    case OCT_##name:                                                                               \
        return desc;
        OCT_STATUS_MAP(OCT__STATUS_CASE)
#undef OCT__STATUS_CASE
    }
    return "unknown status";
}

const char *oct_last_error(void) {
    return last_error;
}

oct_status oct_fail(oct_status status, const char *fmt, ...) {
    /* Format into a local buffer first: the arguments may include oct_last_error() itself
     * (adding context to a message from a lower layer). */
    char buf[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *c = buf; *c; c++) /* one line, whatever a file's names or a library's text hold */
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    memcpy(last_error, buf, sizeof buf);
    return status;
}

void oct_clear_error(void) {
    last_error[0] = '\0';
}

void oct__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "octet: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}

static _Atomic(oct_oom_handler) oom_handler;

oct_oom_handler oct_set_oom_handler(oct_oom_handler handler) {
    return atomic_exchange(&oom_handler, handler);
}

void oct__out_of_memory(size_t bytes, const char *file, int line) {
    oct_oom_handler handler = atomic_load(&oom_handler);
    if (handler) handler(bytes);
    fprintf(stderr, "octet: out of memory: could not allocate %zu bytes (%s:%d)\n", bytes, file,
            line);
    abort();
}
