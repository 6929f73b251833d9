/* Issue 19: after exec of a set-user-ID file every view of the ids agrees:
 * getuid/geteuid (which XINIM's kernel answers from its copy of PM's ids),
 * getresuid and /proc/self/status.  argv[1]: a directory uid 65534 may enter;
 * the program copies itself there as a root-owned 04755 file and a child that
 * became uid 65534 execs it with "show". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(void) {
    uid_t r, e, s;
    char line[256], uids[256] = "none";
    getresuid(&r, &e, &s);
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Uid:", 4) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(uids, sizeof uids, "%s", line);
        }
    if (f) fclose(f);
    printf("getuid=%d geteuid=%d getresuid=%d,%d,%d %s\n", (int)getuid(), (int)geteuid(),
           (int)r, (int)e, (int)s, uids);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "show") == 0) {
        show();
        return 0;
    }
    if (argc < 2) return 2;
    char path[4096], buf[65536];
    snprintf(path, sizeof path, "%s/show", argv[1]);
    int in = open("/proc/self/exe", O_RDONLY), out = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0700);
    ssize_t n;
    if (in < 0 || out < 0) { perror("copy"); return 2; }
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) { perror("write"); return 2; }
    close(in);
    close(out);
    if (chown(path, 0, 0) || chmod(path, 04755)) { perror("chmod"); return 2; }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setuid(65534)) _exit(3);
        show();
        fflush(stdout);
        execl(path, "show", "show", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
