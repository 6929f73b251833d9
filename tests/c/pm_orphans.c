/* A parent that exits before its children: they go to init, which reaps them.
 * The middle process forks N sleepers and exits at once; main waits for the
 * middle only, lets the orphans finish, reports and waits for a signal. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void msleep(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5;
    setvbuf(stdout, NULL, _IOLBF, 0);
    pid_t middle = fork();
    if (middle == 0) {
        for (int i = 0; i < n; i++) {
            if (fork() == 0) {
                msleep(300);
                /* adopted by init by now */
                printf("orphan ppid %d\n", (int)getppid());
                _exit(0);
            }
        }
        _exit(0);
    }
    int status;
    waitpid(middle, &status, 0);
    printf("middle exited %d\n", WEXITSTATUS(status));
    msleep(800);
    printf("done\n");
    if (argc > 2) pause();
    return 0;
}
