/* Issue 19: Linux's set-ID rules, one line per case (differential: natively
 * and under xinim-run, both as root).  argv[1] is a directory that uid 65534
 * may enter; each case makes a fresh file there as root, does one thing --
 * as uid 65534 (no groups) or as root -- and prints the mode that results. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534
static char dir[4096];
static char path[4200];

enum op { WRITE, WRITE0, PWRITE, APPEND, TRUNCATE, FTRUNCATE, OTRUNC, FALLOCATE,
          CHOWN_UID, CHOWN_NONE, CHOWN_GID, CHMOD };

static int do_op(enum op op, int arg) {
    int fd = -1, r = 0;
    switch (op) {
    case WRITE: case WRITE0: case PWRITE:
        if ((fd = open(path, O_WRONLY)) < 0) return -1;
        if (op == PWRITE) r = pwrite(fd, "y", 1, 5) == 1 ? 0 : -1;
        else r = write(fd, "y", op == WRITE0 ? 0 : 1) >= 0 ? 0 : -1;
        break;
    case APPEND:
        if ((fd = open(path, O_WRONLY | O_APPEND)) < 0) return -1;
        r = write(fd, "y", 1) == 1 ? 0 : -1;
        break;
    case TRUNCATE: return truncate(path, 1);
    case FTRUNCATE:
        if ((fd = open(path, O_WRONLY)) < 0) return -1;
        r = ftruncate(fd, 3);
        break;
    case OTRUNC:
        if ((fd = open(path, O_WRONLY | O_TRUNC)) < 0) return -1;
        break;
    case FALLOCATE:
        if ((fd = open(path, O_WRONLY)) < 0) return -1;
        r = fallocate(fd, 0, 0, 8192);
        break;
    case CHOWN_UID: return chown(path, arg, -1);
    case CHOWN_NONE: return chown(path, -1, -1);
    case CHOWN_GID: return chown(path, -1, arg);
    case CHMOD: return chmod(path, arg);
    }
    if (fd >= 0) close(fd);
    return r;
}

/* make the file (owner uid:gid, mode), run op as `as` (0 or NOBODY), print the mode */
static void one(const char *name, unsigned mode, int uid, int gid, int as, enum op op, int arg) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "hello", 5) != 5) { perror(path); exit(2); }
    close(fd);
    if (chown(path, uid, gid) || chmod(path, mode)) { perror("setup"); exit(2); }
    int result;
    if (as == 0) {
        result = do_op(op, arg);
    } else {
        pid_t pid = fork();
        if (pid == 0) {
            if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY)) _exit(3);
            _exit(do_op(op, arg) == 0 ? 0 : 1);
        }
        int st;
        waitpid(pid, &st, 0);
        result = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
    }
    struct stat sb;
    if (stat(path, &sb)) { perror("stat"); exit(2); }
    printf("%-26s %s mode %04o -> %04o\n", name, result == 0 ? "ok  " : "fail",
           mode, (unsigned)(sb.st_mode & 07777));
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    snprintf(dir, sizeof dir, "%s", argv[1]);
    setvbuf(stdout, NULL, _IONBF, 0);
    /* write by a caller without CAP_FSETID: S_ISUID goes, S_ISGID when group-exec
     * (or when the writer is not in the file's group) */
    one("write-6777", 06777, 0, 0, NOBODY, WRITE, 0);
    one("write-4777", 04777, 0, 0, NOBODY, WRITE, 0);
    one("write-2777", 02777, 0, 0, NOBODY, WRITE, 0);
    one("write-2767-other-group", 02767, 0, 0, NOBODY, WRITE, 0);
    one("write-2767-own-group", 02767, 0, NOBODY, NOBODY, WRITE, 0);
    one("write-6777-by-owner", 06777, NOBODY, 0, NOBODY, WRITE, 0);
    one("write-6777-by-root", 06777, 0, 0, 0, WRITE, 0);
    one("write-empty-6777", 06777, 0, 0, NOBODY, WRITE0, 0);
    one("pwrite-6777", 06777, 0, 0, NOBODY, PWRITE, 0);
    one("append-6777", 06777, 0, 0, NOBODY, APPEND, 0);
    one("write-0777", 0777, 0, 0, NOBODY, WRITE, 0);
    /* truncate, ftruncate, O_TRUNC, fallocate: the same rule */
    one("truncate-6777", 06777, 0, 0, NOBODY, TRUNCATE, 0);
    one("truncate-6777-by-root", 06777, 0, 0, 0, TRUNCATE, 0);
    one("ftruncate-6777", 06777, 0, 0, NOBODY, FTRUNCATE, 0);
    one("o_trunc-6777", 06777, 0, 0, NOBODY, OTRUNC, 0);
    one("fallocate-6777", 06777, 0, 0, NOBODY, FALLOCATE, 0);
    one("fallocate-6777-by-root", 06777, 0, 0, 0, FALLOCATE, 0);
    /* chown of a regular file: S_ISUID always, S_ISGID when group-exec */
    one("chown-uid-6777", 06777, 0, 0, 0, CHOWN_UID, NOBODY);
    one("chown-none-6777", 06777, 0, 0, 0, CHOWN_NONE, 0);
    one("chown-gid-6755", 06755, 0, 0, 0, CHOWN_GID, NOBODY);
    one("chown-uid-2745", 02745, 0, 0, 0, CHOWN_UID, NOBODY);
    one("chown-by-owner-6777", 06777, NOBODY, NOBODY, NOBODY, CHOWN_GID, NOBODY);
    /* chmod setting S_ISGID by a non-member of the file's group */
    one("chmod-2755-non-member", 0644, NOBODY, 0, NOBODY, CHMOD, 02755);
    one("chmod-2755-member", 0644, NOBODY, NOBODY, NOBODY, CHMOD, 02755);
    one("chmod-6755-non-member", 0644, NOBODY, 0, NOBODY, CHMOD, 06755);
    one("chmod-2755-by-root", 0644, NOBODY, NOBODY, 0, CHMOD, 02755);
    return 0;
}
