/* fork N children (default 200), reap them all, check every status, then
 * report and wait for a signal (the test looks at PM's table and the host
 * meanwhile). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *seen = calloc(65536, 1);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) _exit(i & 0x7f);
        seen[pid] = 1;
    }
    int reaped = 0, bad = 0, status;
    pid_t pid;
    while ((pid = wait(&status)) > 0) {
        if (!seen[pid] || !WIFEXITED(status)) bad++;
        seen[pid] = 0;
        reaped++;
    }
    if (errno != ECHILD) bad++;
    printf("reaped %d bad %d\n", reaped, bad);
    if (argc > 2) pause();
    return bad;
}
