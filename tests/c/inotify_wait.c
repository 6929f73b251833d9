/* Watch DIR for IN_CREATE (or MASK, hex), say "ready", print the names of the next
 * COUNT events, with their masks when MASK is given (a blocking read: the test
 * makes the changes, inside XINIM or through FUSE).
 *   inotify_wait DIR [COUNT [MASK]] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int count = argc > 2 ? atoi(argv[2]) : 1;
    unsigned mask = argc > 3 ? strtoul(argv[3], NULL, 16) : IN_CREATE;
    int in = inotify_init();
    if (in < 0 || inotify_add_watch(in, argv[1], mask) < 0) {
        perror("inotify");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    char buf[4096] __attribute__((aligned(8)));
    while (count > 0) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n <= 0) {
            perror("read");
            return 1;
        }
        for (char *p = buf; p < buf + n && count > 0; count--) {
            struct inotify_event *e = (struct inotify_event *)p;
            if (argc > 3)
                printf("%#x %s\n", e->mask, e->len ? e->name : "-");
            else
                printf("created %s\n", e->len ? e->name : "-");
            p += sizeof *e + e->len;
        }
        fflush(stdout);
    }
    return 0;
}
