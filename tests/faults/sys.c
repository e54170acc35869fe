/* Failures of the calls libsako makes on files outside SQLite: the lock file (open,
 * flock, fstat, stat), the header check before SQLite opens a file (stat, access,
 * fopen, fread), and the backup (lstat, mkstemp, open, fsync, link). The driver is
 * linked with -Wl,--wrap for each (FAULTS_WRAP in the Makefile), so only the calls
 * of the objects in this link come here; SQLite, a shared library, has its own I/O
 * failed through the VFS shim (vfs.c). A failed call returns -1 (or NULL, or a short
 * read) with errno EIO, as a failing disk would. unlink and close are not failed:
 * libsako has nothing to do when they fail. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faults.h"

int __real_open(const char *path, int flags, ...);
FILE *__real_fopen(const char *path, const char *mode);
size_t __real_fread(void *p, size_t size, size_t n, FILE *f);
int __real_ferror(FILE *f);
int __real_fclose(FILE *f);
int __real_stat(const char *path, struct stat *sb);
int __real_lstat(const char *path, struct stat *sb);
int __real_fstat(int fd, struct stat *sb);
int __real_access(const char *path, int mode);
int __real_flock(int fd, int op);
int __real_fsync(int fd);
int __real_link(const char *from, const char *to);
int __real_mkstemp(char *template);

#define FAIL_IF_HIT(ret)                 \
    do {                                 \
        if (fault_hit(FAULT_SYS)) {      \
            errno = EIO;                 \
            return ret;                  \
        }                                \
    } while (0)

int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    FAIL_IF_HIT(-1);
    return __real_open(path, flags, mode);
}

FILE *__wrap_fopen(const char *path, const char *mode)
{
    FAIL_IF_HIT(NULL);
    return __real_fopen(path, mode);
}

/* A read error: nothing read, and the stream's error indicator set (which only a
 * real failed read can set, so ferror is answered here for that stream). */
static FILE *failed_stream;

size_t __wrap_fread(void *p, size_t size, size_t n, FILE *f)
{
    if (fault_hit(FAULT_SYS)) {
        failed_stream = f;
        errno = EIO;
        return 0;
    }
    return __real_fread(p, size, n, f);
}

int __wrap_ferror(FILE *f)
{
    return (f && f == failed_stream) || __real_ferror(f);
}

int __wrap_fclose(FILE *f)
{
    if (f == failed_stream)
        failed_stream = NULL;
    return __real_fclose(f);
}

int __wrap_stat(const char *path, struct stat *sb)
{
    FAIL_IF_HIT(-1);
    return __real_stat(path, sb);
}

int __wrap_lstat(const char *path, struct stat *sb)
{
    FAIL_IF_HIT(-1);
    return __real_lstat(path, sb);
}

int __wrap_fstat(int fd, struct stat *sb)
{
    FAIL_IF_HIT(-1);
    return __real_fstat(fd, sb);
}

int __wrap_access(const char *path, int mode)
{
    FAIL_IF_HIT(-1);
    return __real_access(path, mode);
}

int __wrap_flock(int fd, int op)
{
    FAIL_IF_HIT(-1);
    return __real_flock(fd, op);
}

int __wrap_fsync(int fd)
{
    FAIL_IF_HIT(-1);
    return __real_fsync(fd);
}

int __wrap_link(const char *from, const char *to)
{
    FAIL_IF_HIT(-1);
    return __real_link(from, to);
}

int __wrap_mkstemp(char *template)
{
    FAIL_IF_HIT(-1);
    return __real_mkstemp(template);
}
