/* Issue 19: credentials never survive a reused pid.  Run as root under a small
 * pid limit (XINIM_PID_MAX=300).  Phase 1: N children each setuid(65534) and
 * exit, so pids wrap.  Phase 2: the root parent's next children report their
 * uid through `id -u` and /proc/self/status.  Phase 3: an unprivileged process
 * forks N children past another wrap; none may see uid 0 anywhere. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int status_uids(char *out, size_t size) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Uid:", 4) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(out, size, "%s", line);
            fclose(f);
            return 0;
        }
    }
    fclose(f);
    return -1;
}

static int reap(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* fork n children that run fn; 1 if pids wrapped (a child pid not above the first) */
static int fork_many(int n, int (*fn)(void), int *failures) {
    pid_t first = 0, last = 0;
    int wrapped = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); exit(2); }
        if (pid == 0) _exit(fn());
        if (!first) first = pid;
        else if (pid <= last) wrapped = 1;
        last = pid;
        if (reap(pid) != 0) (*failures)++;
    }
    (void)first;
    return wrapped;
}

static int become_nobody(void) {
    if (setuid(65534) != 0) return 1;
    return getuid() == 65534 && geteuid() == 65534 ? 0 : 1;
}

static int unprivileged_child(void) {
    char uids[256];
    if (getuid() == 0 || geteuid() == 0) return 1;
    if (status_uids(uids, sizeof uids) != 0) return 1;
    return strcmp(uids, "Uid:\t65534\t65534\t65534\t65534") == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 400;
    int failures = 0;
    setvbuf(stdout, NULL, _IONBF, 0);

    int wrapped = fork_many(n, become_nobody, &failures);
    printf("phase1 wrapped=%d failures=%d\n", wrapped, failures);

    for (int i = 0; i < 3; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execl("/usr/bin/id", "id", "-u", (char *)NULL);
            _exit(127);
        }
        reap(pid);
        pid = fork();
        if (pid == 0) {
            char uids[256] = "none";
            status_uids(uids, sizeof uids);
            printf("root child: getuid=%d euid=%d %s\n", (int)getuid(), (int)geteuid(), uids);
            _exit(0);
        }
        reap(pid);
    }

    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        if (become_nobody() != 0) _exit(3);
        int w = fork_many(n, unprivileged_child, &bad);
        printf("phase3 wrapped=%d saw_root=%d\n", w, bad);
        _exit(0);
    }
    printf("phase3 exit=%d\n", reap(pid));
    return 0;
}
