/* The plan's section 8.2 test 2: fork; the child execs /bin/echo hello; the
 * parent wait4s and prints the exit status. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        execl("/bin/echo", "echo", "hello", (char *)0);
        perror("execl");
        _exit(127);
    }
    int status = -1;
    struct rusage ru;
    pid_t got = wait4(pid, &status, 0, &ru);
    if (got != pid) { perror("wait4"); return 1; }
    if (!WIFEXITED(status)) { printf("child did not exit: %#x\n", status); return 1; }
    printf("child %s, exit status %d\n", pid >= 5 ? "pid>=5" : "pid<5", WEXITSTATUS(status));
    return 0;
}
