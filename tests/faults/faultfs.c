/*
 * faultfs.c - an LD_PRELOAD shim that makes file system calls fail on
 * demand, for the fault-injection tests (tests/integration/test_faults.py).
 *
 * SG_FAULTS names a control file; each line is one rule:
 *     CALL ERRNO PATH-SUBSTRING [COUNT]
 * CALL is open, write, read, pread, fdatasync, fsync, dup, rename, ftruncate
 * or unlink; ERRNO a name (EMFILE, ENOSPC, EIO, EACCES, EROFS, EFBIG), or
 * DELAYms to make the call wait that many milliseconds and then succeed; a call
 * fails when the path it works on (for descriptor calls, the file the
 * descriptor refers to) contains PATH-SUBSTRING; COUNT, when given, is how
 * many calls fail before the rule goes quiet. The file is read again
 * whenever it changes, so a test arms and clears faults while the process
 * runs; an empty or missing file injects nothing. Only regular files and
 * directories are matched: sockets and pipes are never touched.
 *
 * This is test code: it is built only with the test suite and never linked
 * into scrubgate.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RULES 16

struct rule {
    char call[16];
    int err;
    char path[200];
    long count; /* -1: for ever */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule rules[MAX_RULES];
static int n_rules;
static struct timespec seen_mtime;
static off_t seen_size = -1;
static ino_t seen_ino;

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static int (*real_fdatasync)(int);
static int (*real_fsync)(int);
static int (*real_dup)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_ftruncate)(int, off_t);
static int (*real_unlink)(const char *);

__attribute__((constructor)) static void init(void)
{
    real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    real_openat = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
    real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    real_read = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    real_pread = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_dup = (int (*)(int))dlsym(RTLD_NEXT, "dup");
    real_rename = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    real_ftruncate = (int (*)(int, off_t))dlsym(RTLD_NEXT, "ftruncate");
    real_unlink = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
}

static int errno_by_name(const char *s)
{
    static const struct {
        const char *name;
        int err;
    } names[] = {{"EMFILE", EMFILE}, {"ENFILE", ENFILE}, {"ENOSPC", ENOSPC}, {"EIO", EIO},
                 {"EACCES", EACCES}, {"EROFS", EROFS},   {"EFBIG", EFBIG},   {"EDQUOT", EDQUOT}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(s, names[i].name))
            return names[i].err;
    return EIO;
}

/* Re-read the control file when it changed. Called with the lock held. */
static void reload(void)
{
    const char *ctl = getenv("SG_FAULTS");
    struct stat st;
    if (!ctl || stat(ctl, &st) < 0) {
        n_rules = 0;
        seen_size = -1;
        return;
    }
    if (st.st_size == seen_size && st.st_ino == seen_ino &&
        st.st_mtim.tv_sec == seen_mtime.tv_sec && st.st_mtim.tv_nsec == seen_mtime.tv_nsec)
        return;
    seen_size = st.st_size;
    seen_ino = st.st_ino;
    seen_mtime = st.st_mtim;
    n_rules = 0;
    int fd = real_open(ctl, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[4096];
    ssize_t len = real_read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len <= 0)
        return;
    buf[len] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line && n_rules < MAX_RULES;
         line = strtok_r(NULL, "\n", &save)) {
        struct rule r = {.count = -1};
        char err[32];
        long count = -1;
        int n = sscanf(line, "%15s %31s %199s %ld", r.call, err, r.path, &count);
        if (n < 3)
            continue;
        r.err = strncmp(err, "DELAY", 5) == 0 ? -atoi(err + 5) : errno_by_name(err);
        r.count = n == 4 ? count : -1;
        rules[n_rules++] = r;
    }
}

/* Should CALL on path fail? Then the errno to fail with, else 0. */
static int fault(const char *call, const char *path)
{
    int err = 0;
    if (!path)
        return 0;
    pthread_mutex_lock(&lock);
    reload();
    for (int i = 0; i < n_rules && !err; i++) {
        struct rule *r = &rules[i];
        if (strcmp(r->call, call) || !strstr(path, r->path) || r->count == 0)
            continue;
        if (r->count > 0)
            r->count--;
        err = r->err;
    }
    pthread_mutex_unlock(&lock);
    return err;
}

/* The file behind a descriptor, when it is a regular file or a directory. */
static const char *fd_path(int fd, char *buf, size_t len)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
        return NULL;
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, len - 1);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return buf;
}

static int fd_fault(const char *call, int fd)
{
    char buf[512];
    int any;
    pthread_mutex_lock(&lock);
    reload();
    any = n_rules;
    pthread_mutex_unlock(&lock);
    return any ? fault(call, fd_path(fd, buf, sizeof(buf))) : 0;
}

/* A rule's verdict: fail with its errno, or (DELAY) wait and go on. */
#define FAIL_IF(e)                                                                                 \
    do {                                                                                           \
        int e_ = (e);                                                                              \
        if (e_ < 0) {                                                                              \
            usleep((useconds_t)(-e_) * 1000u);                                                     \
        } else if (e_) {                                                                           \
            errno = e_;                                                                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* The mode argument of open(2), present only when the flags create a file. */
#define OPEN_MODE(flags, mode)                                                                     \
    do {                                                                                           \
        if ((flags) & (O_CREAT | O_TMPFILE)) {                                                     \
            va_list ap;                                                                            \
            va_start(ap, flags);                                                                   \
            (mode) = (mode_t)va_arg(ap, int);                                                      \
            va_end(ap);                                                                            \
        }                                                                                          \
    } while (0)

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, mode);
    FAIL_IF(fault("open", path));
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, mode);
    FAIL_IF(fault("open", path));
    return real_openat(dirfd, path, flags, mode);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    FAIL_IF(fd_fault("write", fd));
    return real_write(fd, buf, n);
}

ssize_t read(int fd, void *buf, size_t n)
{
    FAIL_IF(fd_fault("read", fd));
    return real_read(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    FAIL_IF(fd_fault("pread", fd));
    return real_pread(fd, buf, n, off);
}

/* The same call under the name a _FILE_OFFSET_BITS=64 build links to. */
ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
    return pread(fd, buf, n, off);
}

int fdatasync(int fd)
{
    FAIL_IF(fd_fault("fdatasync", fd));
    return real_fdatasync(fd);
}

int fsync(int fd)
{
    FAIL_IF(fd_fault("fsync", fd));
    return real_fsync(fd);
}

int dup(int fd)
{
    FAIL_IF(fd_fault("dup", fd));
    return real_dup(fd);
}

int rename(const char *from, const char *to)
{
    FAIL_IF(fault("rename", from));
    return real_rename(from, to);
}

int ftruncate(int fd, off_t len)
{
    FAIL_IF(fd_fault("ftruncate", fd));
    return real_ftruncate(fd, len);
}

int unlink(const char *path)
{
    FAIL_IF(fault("unlink", path));
    return real_unlink(path);
}
