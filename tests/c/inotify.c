/* inotify, differential: every kind of event a directory and a file watch get.
 *   inotify DIR      (DIR: an empty scratch directory)
 * Prints events as "wd-name mask name [cookie=prev]" -- nothing that differs
 * between runs (wds by role, cookies only compared).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

static int dwd, fwd, swd;
static char buf_small[8];

static const char *who(int wd) {
    return wd == dwd ? "dir" : wd == fwd ? "file" : wd == swd ? "sub" : "?";
}

static void drain(int fd, const char *step) {
    char buf[8192] __attribute__((aligned(8)));
    static uint32_t last_cookie;
    printf("%s:", step);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            printf(" [%s %#x %s", who(e->wd), e->mask, e->len ? e->name : "-");
            if (e->cookie)
                printf(" cookie%s", e->cookie == last_cookie ? "=prev" : "");
            last_cookie = e->cookie;
            printf("]");
            p += sizeof *e + e->len;
        }
    }
    printf("\n");
}

static void err(const char *what, int rc) {
    printf("%s: %d %s\n", what, rc < 0 ? -1 : rc, rc < 0 ? strerror(errno) : "ok");
}

int main(int argc, char **argv) {
    const char *dir = argv[1];
    char f[512], g[512], sub[512];
    snprintf(f, sizeof f, "%s/file", dir);
    snprintf(g, sizeof g, "%s/renamed", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

    dwd = inotify_add_watch(in, dir, IN_ALL_EVENTS & ~(IN_ACCESS | IN_OPEN | IN_CLOSE_NOWRITE));
    int fd = open(f, O_CREAT | O_WRONLY, 0600);
    drain(in, "create");
    fwd = inotify_add_watch(in, f, IN_ALL_EVENTS);
    write(fd, "abc", 3);
    drain(in, "write");
    close(fd);
    drain(in, "close");
    chmod(f, 0644);
    drain(in, "chmod");
    fd = open(f, O_RDONLY);
    read(fd, buf_small, 2);
    read(fd, buf_small, 8);                       /* 1 byte: IN_ACCESS again (merged) */
    read(fd, buf_small, 8);                       /* 0 bytes: no event */
    close(fd);
    drain(in, "open+read+close");
    truncate(f, 1);
    drain(in, "truncate");
    rename(f, g);
    drain(in, "rename");
    mkdir(sub, 0755);
    drain(in, "mkdir");
    swd = inotify_add_watch(in, sub, IN_DELETE_SELF | IN_ONLYDIR);
    rmdir(sub);
    drain(in, "rmdir");
    link(g, f);
    drain(in, "link");
    unlink(f);
    drain(in, "unlink one link");
    unlink(g);
    drain(in, "unlink last");

    /* the watch calls' answers */
    fd = open(f, O_CREAT | O_WRONLY, 0600);
    close(fd);
    drain(in, "again");
    err("onlydir on a file", inotify_add_watch(in, f, IN_MODIFY | IN_ONLYDIR));
    int w1 = inotify_add_watch(in, f, IN_MODIFY);
    int w2 = inotify_add_watch(in, f, IN_ATTRIB | IN_MASK_ADD);
    printf("same wd: %d\n", w1 == w2);
    fwd = w1;
    chmod(f, 0600);
    truncate(f, 0);
    drain(in, "mask add");
    err("mask create twice", inotify_add_watch(in, f, IN_ATTRIB | IN_MASK_CREATE));
    err("mask add+create", inotify_add_watch(in, f, IN_ATTRIB | IN_MASK_CREATE | IN_MASK_ADD));
    err("no events", inotify_add_watch(in, f, 0));
    err("no such path", inotify_add_watch(in, "/nonexistent/x", IN_MODIFY));
    err("not inotify", inotify_add_watch(0, f, IN_MODIFY));
    err("bad fd", inotify_add_watch(999, f, IN_MODIFY));
    err("rm", inotify_rm_watch(in, w1));
    drain(in, "removed");
    err("rm again", inotify_rm_watch(in, w1));
    err("init1 flags", inotify_init1(0x1234));
    int one = inotify_add_watch(in, f, IN_ATTRIB | IN_ONESHOT);
    fwd = one;
    chmod(f, 0644);
    chmod(f, 0600);
    drain(in, "oneshot");
    char small[8];
    chmod(dir, 0755);
    err("short read", (int)read(in, small, sizeof small));
    drain(in, "left");
    unlink(f);
    close(in);
    printf("done\n");
    return 0;
}
