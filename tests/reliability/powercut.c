/*
 * powercut.so: an LD_PRELOAD shim that remembers what a process made durable.
 *
 * For regular files directly inside $LOCKHUB_POWERCUT_WATCH, with snapshots kept in
 * $LOCKHUB_POWERCUT_SHADOW:
 *
 * - fsync(2) or fdatasync(2) of a file first copies its whole content, as it is at that
 *   moment, to <shadow>/<name> (written beside it and renamed over it, so a SIGKILL in the
 *   middle of a copy leaves the previous snapshot whole), then calls the real function;
 * - unlink(2) or unlinkat(2) of a file leaves a marker <shadow>/.unlinked.<name>: the
 *   deletion is pending, as a directory entry change is until the directory is synced;
 * - fsync(2) or fdatasync(2) of the watched directory itself turns each pending deletion
 *   into a durable one: the snapshot goes and a tombstone <shadow>/.deleted.<name> stays.
 *
 * After the process is SIGKILLed, rebuilding the watched directory from the shadow
 * (tests/reliability/powercut.py) is "the power went out and every write that was not yet
 * synced is gone".
 *
 * Built by the tests with: gcc -shared -fPIC -O2 -o powercut.so powercut.c -ldl
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Copy in 256 KiB pieces: large enough for few syscalls, small enough for the stack. */
#define COPY_CHUNK (256 * 1024)

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);

static const char *watch_dir(void) {
    const char *watch = getenv("LOCKHUB_POWERCUT_WATCH");
    return watch != NULL && getenv("LOCKHUB_POWERCUT_SHADOW") != NULL ? watch : NULL;
}

/* The name of path inside the watched directory, or NULL if it is not directly in it. */
static const char *watched(const char *path) {
    const char *watch = watch_dir();
    if (watch == NULL) return NULL;
    size_t len = strlen(watch);
    if (strncmp(path, watch, len) != 0 || path[len] != '/') return NULL;
    const char *name = path + len + 1;
    return strchr(name, '/') == NULL && *name != '\0' ? name : NULL;
}

static void shadow_path(char *out, size_t size, const char *prefix, const char *name) {
    snprintf(out, size, "%s/%s%s", getenv("LOCKHUB_POWERCUT_SHADOW"), prefix, name);
}

static void touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
}

static void copy_out(int fd, int out, off_t size) {
    static __thread char buffer[COPY_CHUNK];
    for (off_t at = 0; at < size;) {
        ssize_t got = pread(fd, buffer, COPY_CHUNK, at);
        if (got <= 0) break;
        for (ssize_t done = 0; done < got;) {
            ssize_t put = write(out, buffer + done, (size_t)(got - done));
            if (put <= 0) return;
            done += put;
        }
        at += got;
    }
}

/* The file's content is durable: it replaces any snapshot, pending deletion or tombstone. */
static void snapshot_file(int fd, const char *name, off_t size) {
    char target[PATH_MAX], partial[PATH_MAX], marker[PATH_MAX];
    shadow_path(target, sizeof target, "", name);
    char prefix[64];
    snprintf(prefix, sizeof prefix, ".%ld.", (long)syscall(SYS_gettid));
    shadow_path(partial, sizeof partial, prefix, name);
    int out = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) return;
    copy_out(fd, out, size);
    close(out);
    rename(partial, target);
    shadow_path(marker, sizeof marker, ".unlinked.", name);
    real_unlink(marker);
    shadow_path(marker, sizeof marker, ".deleted.", name);
    real_unlink(marker);
}

/* The directory is durable: every pending deletion becomes a tombstone. */
static void settle_deletions(void) {
    DIR *dir = opendir(getenv("LOCKHUB_POWERCUT_SHADOW"));
    if (dir == NULL) return;
    const char *pending = ".unlinked.";
    size_t len = strlen(pending);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strncmp(entry->d_name, pending, len) != 0) continue;
        const char *name = entry->d_name + len;
        char path[PATH_MAX];
        shadow_path(path, sizeof path, "", name);
        real_unlink(path);
        shadow_path(path, sizeof path, ".deleted.", name);
        touch(path);
        shadow_path(path, sizeof path, ".unlinked.", name);
        real_unlink(path);
    }
    closedir(dir);
}

static void resolve(void) {
    if (real_unlink == NULL) real_unlink = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    if (real_unlinkat == NULL)
        real_unlinkat = (int (*)(int, const char *, int))dlsym(RTLD_NEXT, "unlinkat");
}

/* Called before a sync of fd, keeping errno as it was. */
static void on_sync(int fd) {
    int saved = errno;
    resolve();
    const char *watch = watch_dir();
    char link[64], path[PATH_MAX];
    struct stat st;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = watch == NULL ? -1 : readlink(link, path, sizeof path - 1);
    if (n > 0 && fstat(fd, &st) == 0) {
        path[n] = '\0';
        const char *name = watched(path);
        if (name != NULL && S_ISREG(st.st_mode)) snapshot_file(fd, name, st.st_size);
        if (S_ISDIR(st.st_mode) && strcmp(path, watch) == 0) settle_deletions();
    }
    errno = saved;
}

/* Called before an unlink of path (relative to dirfd), keeping errno as it was. */
static void on_unlink(int dirfd, const char *path) {
    int saved = errno;
    resolve();
    char full[2 * PATH_MAX + 2], base[PATH_MAX];
    if (watch_dir() == NULL) goto done;
    if (path[0] == '/') {
        snprintf(full, sizeof full, "%s", path);
    } else {
        if (dirfd == AT_FDCWD) {
            if (getcwd(base, sizeof base) == NULL) goto done;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n <= 0) goto done;
            base[n] = '\0';
        }
        snprintf(full, sizeof full, "%s/%s", base, path);
    }
    const char *name = watched(full);
    if (name != NULL) {
        char marker[PATH_MAX];
        shadow_path(marker, sizeof marker, ".unlinked.", name);
        touch(marker);
    }
done:
    errno = saved;
}

int fsync(int fd) {
    if (real_fsync == NULL) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    on_sync(fd);
    return real_fsync(fd);
}

int fdatasync(int fd) {
    if (real_fdatasync == NULL) real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    on_sync(fd);
    return real_fdatasync(fd);
}

int unlink(const char *path) {
    on_unlink(AT_FDCWD, path);
    return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags) {
    if ((flags & AT_REMOVEDIR) == 0) on_unlink(dirfd, path);
    resolve();
    return real_unlinkat(dirfd, path, flags);
}
