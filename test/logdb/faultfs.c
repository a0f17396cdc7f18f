/*
 * faultfs: an LD_PRELOAD layer that makes a power loss observable to test/logdb/powerloss.test.ts.
 *
 * kill -9 keeps the page cache, so a crash test cannot tell an fsynced write from one that
 * was never synced. This layer records, for the files directly inside FAULTFS_DIR, an undo
 * log of every change since that file's (or the directory's) last fsync: before each
 * pwrite/write/ftruncate the bytes it overwrites, each file created or unlinked, and each
 * fsync/fdatasync that makes them durable. After the process is killed, the test replays the
 * log backwards (faultfs.ts) to put the files back where a power loss at that moment could
 * have left them: what was synced, plus a random prefix of what was not.
 *
 *   FAULTFS_DIR=/abs/dir      the directory whose files are watched (not its subdirectories)
 *   FAULTFS_LOG=/abs/log      the undo log (appended; outside FAULTFS_DIR)
 *   FAULTFS_GRAVE=/abs/grave  where unlinked files are kept (hard links) so an unlink can be undone
 *   FAULTFS_DROP_SYNC=1       fsync and fdatasync of watched files and the directory do nothing
 *                             and log nothing: a database whose fsyncs were removed (self-test)
 *
 * Log records, little endian: u8 kind, u16 nameLength, name, u64 offset, u64 length,
 * u64 oldSize, then length bytes of old data (kinds W and T only).
 *   W: a write at offset; old data is what it overwrote within the old size
 *   T: a truncation to offset; old data is what lay beyond it
 *   S: the file was synced          C: the file was created
 *   U: the file was unlinked (kept in FAULTFS_GRAVE under its record number)
 *   D: the directory was synced
 *
 * Built by the test with `cc -shared -fPIC -O2 -o faultfs.so faultfs.c -ldl`. Single-threaded
 * use only (the log database runs on one thread).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FDS 4096
#define NAME_MAX_BYTES 255

static char dir_path[4096];
static size_t dir_len;
static char grave_path[4096];
static int log_fd = -1;
static int drop_sync;
static int initialized;
static uint64_t record_seq;
/* Watched fds: a file name inside dir_path, or "/" for the directory itself. */
static char *watched[MAX_FDS];

static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_open)(const char *, int, ...);
static int (*real_fsync)(int);

static void init(void) {
  if (initialized) return;
  initialized = 1;
  real_pwrite = dlsym(RTLD_NEXT, "pwrite64");
  real_pread = dlsym(RTLD_NEXT, "pread64");
  real_write = dlsym(RTLD_NEXT, "write");
  real_open = dlsym(RTLD_NEXT, "open64");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  const char *d = getenv("FAULTFS_DIR");
  const char *l = getenv("FAULTFS_LOG");
  const char *g = getenv("FAULTFS_GRAVE");
  const char *s = getenv("FAULTFS_DROP_SYNC");
  drop_sync = s != NULL && strcmp(s, "1") == 0;
  if (d == NULL || l == NULL || g == NULL) return;
  snprintf(dir_path, sizeof dir_path, "%s", d);
  dir_len = strlen(dir_path);
  while (dir_len > 1 && dir_path[dir_len - 1] == '/') dir_path[--dir_len] = 0;
  snprintf(grave_path, sizeof grave_path, "%s", g);
  log_fd = real_open(l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    fprintf(stderr, "faultfs: cannot open log %s: %s\n", l, strerror(errno));
    abort();
  }
}

static void die(const char *what) {
  fprintf(stderr, "faultfs: %s: %s\n", what, strerror(errno));
  abort();
}

static void put(const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = real_write(log_fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("log write");
    }
    p += w;
    n -= (size_t)w;
  }
}

/* One record in one write(): a kill leaves at most its last record torn (the parser drops it). */
static void record(char kind, const char *name, uint64_t offset, uint64_t length, uint64_t old_size,
                   const void *data) {
  uint16_t name_len = (uint16_t)strlen(name);
  size_t head = 1 + 2 + name_len + 24;
  size_t total = head + (data != NULL ? length : 0);
  char *buf = malloc(total);
  if (buf == NULL) die("malloc");
  char *p = buf;
  *p++ = kind;
  memcpy(p, &name_len, 2);
  p += 2;
  memcpy(p, name, name_len);
  p += name_len;
  memcpy(p, &offset, 8);
  memcpy(p + 8, &length, 8);
  memcpy(p + 16, &old_size, 8);
  p += 24;
  if (data != NULL && length > 0) memcpy(p, data, length);
  put(buf, total);
  free(buf);
  record_seq++;
}

/* The name of path inside dir_path ("/" for the directory itself), or NULL when not watched. */
static const char *watched_name(const char *path) {
  if (log_fd < 0 || path == NULL || path[0] != '/') return NULL;
  if (strncmp(path, dir_path, dir_len) != 0) return NULL;
  if (path[dir_len] == 0) return "/";
  if (path[dir_len] != '/') return NULL;
  const char *name = path + dir_len + 1;
  if (name[0] == 0 || strchr(name, '/') != NULL || strlen(name) > NAME_MAX_BYTES) return NULL;
  return name;
}

static const char *fd_name(int fd) {
  if (fd < 0 || fd >= MAX_FDS) return NULL;
  return watched[fd];
}

static int do_open(const char *path, int flags, mode_t mode) {
  init();
  const char *name = watched_name(path);
  int existed = name != NULL && access(path, F_OK) == 0;
  if (name != NULL && (flags & O_TRUNC) && existed && strcmp(name, "/") != 0) {
    errno = ENOTSUP; /* nothing here truncates at open; refuse rather than log it wrong */
    fprintf(stderr, "faultfs: O_TRUNC on %s is not modelled\n", path);
    return -1;
  }
  int fd = real_open(path, flags, mode);
  if (fd < 0 || name == NULL) return fd;
  if (fd >= MAX_FDS) die("fd beyond MAX_FDS");
  free(watched[fd]);
  watched[fd] = strdup(name);
  if ((flags & O_CREAT) && !existed) record('C', name, 0, 0, 0, NULL);
  return fd;
}

int open(const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  return do_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  return do_open(path, flags, mode);
}

int close(int fd) {
  static int (*real)(int);
  if (!real) real = dlsym(RTLD_NEXT, "close");
  if (fd >= 0 && fd < MAX_FDS && watched[fd] != NULL) {
    free(watched[fd]);
    watched[fd] = NULL;
  }
  return real(fd);
}

static uint64_t size_of(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat");
  return (uint64_t)st.st_size;
}

/* Logs what a write of n bytes at offset will overwrite. */
static void before_write(int fd, const char *name, size_t n, off_t offset) {
  uint64_t old_size = size_of(fd);
  uint64_t off = (uint64_t)offset;
  uint64_t keep = off >= old_size ? 0 : (old_size - off < n ? old_size - off : n);
  void *old = NULL;
  if (keep > 0) {
    old = malloc(keep);
    if (old == NULL) die("malloc");
    ssize_t r = real_pread(fd, old, keep, offset);
    if (r != (ssize_t)keep) die("pread of the old data");
  }
  record('W', name, off, keep, old_size, old);
  free(old);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t offset) {
  init();
  const char *name = fd_name(fd);
  if (name != NULL && strcmp(name, "/") != 0) before_write(fd, name, n, offset);
  return real_pwrite(fd, buf, n, offset);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset) {
  return pwrite64(fd, buf, n, offset);
}

ssize_t write(int fd, const void *buf, size_t n) {
  init();
  const char *name = fd_name(fd);
  if (name != NULL && strcmp(name, "/") != 0) {
    off_t at = lseek(fd, 0, SEEK_CUR);
    if (at < 0) die("lseek");
    before_write(fd, name, n, at);
  }
  return real_write(fd, buf, n);
}

static int do_truncate(int fd, off_t length, int (*real)(int, off_t)) {
  init();
  const char *name = fd_name(fd);
  if (name != NULL && strcmp(name, "/") != 0) {
    uint64_t old_size = size_of(fd);
    uint64_t len = (uint64_t)length;
    uint64_t cut = old_size > len ? old_size - len : 0;
    void *old = NULL;
    if (cut > 0) {
      old = malloc(cut);
      if (old == NULL) die("malloc");
      if (real_pread(fd, old, cut, length) != (ssize_t)cut) die("pread before truncate");
    }
    record('T', name, len, cut, old_size, old);
    free(old);
  }
  return real(fd, length);
}

int ftruncate(int fd, off_t length) {
  static int (*real)(int, off_t);
  if (!real) real = dlsym(RTLD_NEXT, "ftruncate");
  return do_truncate(fd, length, real);
}

int ftruncate64(int fd, off_t length) {
  static int (*real)(int, off_t);
  if (!real) real = dlsym(RTLD_NEXT, "ftruncate64");
  return do_truncate(fd, length, real);
}

static int do_sync(int fd, int (*real)(int)) {
  init();
  const char *name = fd_name(fd);
  if (name == NULL) return real(fd);
  if (drop_sync) return 0;
  int r = real(fd);
  if (r == 0) record(strcmp(name, "/") == 0 ? 'D' : 'S', name, 0, 0, 0, NULL);
  return r;
}

int fsync(int fd) {
  return do_sync(fd, real_fsync ? real_fsync : (init(), real_fsync));
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = dlsym(RTLD_NEXT, "fdatasync");
  return do_sync(fd, real);
}

int unlink(const char *path) {
  static int (*real)(const char *);
  if (!real) real = dlsym(RTLD_NEXT, "unlink");
  init();
  const char *name = watched_name(path);
  if (name != NULL && strcmp(name, "/") != 0 && access(path, F_OK) == 0) {
    char kept[4200];
    snprintf(kept, sizeof kept, "%s/%llu", grave_path, (unsigned long long)record_seq);
    if (link(path, kept) != 0) die("link into the grave");
    record('U', name, record_seq, 0, 0, NULL);
  }
  return real(path);
}

int rename(const char *from, const char *to) {
  static int (*real)(const char *, const char *);
  if (!real) real = dlsym(RTLD_NEXT, "rename");
  init();
  if (watched_name(from) != NULL || watched_name(to) != NULL) {
    fprintf(stderr, "faultfs: rename in the watched directory is not modelled (%s -> %s)\n", from, to);
    errno = ENOTSUP;
    return -1;
  }
  return real(from, to);
}
