/* Watch DIR for IN_CREATE, say "ready", print the names of the next COUNT events
 * (a blocking read: the test creates the files, inside XINIM or through FUSE). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int count = argc > 2 ? atoi(argv[2]) : 1;
    int in = inotify_init();
    if (in < 0 || inotify_add_watch(in, argv[1], IN_CREATE) < 0) {
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
            printf("created %s\n", e->len ? e->name : "-");
            p += sizeof *e + e->len;
        }
        fflush(stdout);
    }
    return 0;
}
