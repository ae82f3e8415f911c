/* Opening input files: non-blocking until the file is known to be regular. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a file that is not regular is, for errors. */
static const char *kind(mode_t mode) {
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "a special file";
}

oct_status oct__open_regular(const char *path, int *fd, int64_t *size) {
    *fd = -1;
    /* O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer */
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (f < 0) return oct_fail(OCT_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    oct_status s = OCT_OK;
    int flags;
    if (fstat(f, &st) != 0)
        s = oct_fail(OCT_EIO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = oct_fail(OCT_EIO, "%s: not a regular file (%s)", path, kind(st.st_mode));
    else if ((flags = fcntl(f, F_GETFL)) < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) < 0)
        s = oct_fail(OCT_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (s != OCT_OK) {
        close(f);
        return s;
    }
    *fd = f;
    if (size) *size = (int64_t)st.st_size;
    return OCT_OK;
}

oct_status oct__read_at(const char *path, int fd, void *buf, size_t n, int64_t off) {
    for (size_t got = 0; got < n;) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)off + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return oct_fail(OCT_EIO, "%s: read failed: %s", path,
                            r ? strerror(errno) : "unexpected end of file");
        got += (size_t)r;
    }
    return OCT_OK;
}
