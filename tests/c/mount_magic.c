/* mount(2) onto a magic link that ends on a symlink (/proc/self/fd/N of an
 * O_PATH|O_NOFOLLOW fd of another /proc/self/fd link): Linux refuses, ENOENT
 * (LTP mount08).  Nothing is mounted either way, so this runs natively too.
 *
 *   mount_magic DIR
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char foo[4096], bar[4096], path[64];
    if (argc < 2)
        return 2;
    snprintf(foo, sizeof foo, "%s/foo", argv[1]);
    snprintf(bar, sizeof bar, "%s/bar", argv[1]);
    int fd = open(foo, O_CREAT | O_RDONLY, 0640);
    close(open(bar, O_CREAT | O_RDONLY, 0640));
    if (fd < 0)
        return 3;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int pfd = open(path, O_PATH | O_NOFOLLOW);
    if (pfd < 0)
        return 4;
    snprintf(path, sizeof path, "/proc/self/fd/%d", pfd);
    int r = mount(bar, path, "", MS_BIND, NULL);
    printf("bind onto the magic link: %s\n", r == 0 ? "OK" : strerror(errno));
    if (r == 0)
        umount(path);
    return 0;
}
