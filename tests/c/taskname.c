/* A task name that is not UTF-8 (PR_SET_NAME takes any bytes), then calls that
 * block in XINIM: a pipe read that waits for a child, a wait4, a nanosleep.
 * Prints what it read and the name as the kernel keeps it (hex), exits 0. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    if (prctl(PR_SET_NAME, "\xca\xfe\xff\xfe", 0, 0, 0) != 0) { perror("prctl"); return 2; }
    int p[2];
    if (pipe(p)) { perror("pipe"); return 2; }
    pid_t child = fork();
    if (child == 0) {
        struct timespec t = {0, 200 * 1000 * 1000};
        nanosleep(&t, NULL);
        if (write(p[1], "through", 7) != 7) _exit(3);
        _exit(0);
    }
    close(p[1]);
    char buf[16] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);      /* blocks until the child writes */
    int status = -1;
    waitpid(child, &status, 0);
    struct timespec t = {0, 50 * 1000 * 1000};
    nanosleep(&t, NULL);
    char name[17] = {0};
    prctl(PR_GET_NAME, name, 0, 0, 0);
    printf("read %zd: %s; child status %d; name", n, buf, WEXITSTATUS(status));
    for (size_t i = 0; name[i]; i++)
        printf(" %02x", (unsigned char)name[i]);
    printf("\n");
    return 0;
}
