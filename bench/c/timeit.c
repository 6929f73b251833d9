/* timeit PROG ARGS...: run PROG (fork, execvp, wait) and print its wall time in
 * ns on stderr as "timeit NS STATUS"; PROG's output is left alone.  Measures a
 * workload inside whatever runs timeit, without that runner's own start-up. */
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: timeit PROG ARGS...\n"); return 2; }
    long long t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        perror(argv[1]);
        _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); return 2; }
    long long t1 = now_ns();
    fprintf(stderr, "timeit %lld %d\n", t1 - t0, status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
