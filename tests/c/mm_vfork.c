/* A vfork child shares its parent's address space until it execs or exits: what
 * it maps, unmaps or protects there is the parent's memory afterwards.  Each
 * check prints a line; the output is compared with the native run. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define P 4096

static char *volatile got;     /* written by the child, read by the parent */
static volatile long nattch;

/* Is [addr, addr+P) in /proc/self/maps (what XINIM's MM records), and how? */
static const char *in_maps(void *addr) {
    static char perms[8];
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned long lo, hi, a = (unsigned long)addr;
    char line[512];
    strcpy(perms, "absent");
    if (!f) return "no maps";
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && lo <= a && a < hi) {
            fclose(f);
            perms[4] = 0;
            return perms;
        }
    fclose(f);
    strcpy(perms, "absent");
    return perms;
}

static void report(const char *what, int status) {
    if (WIFEXITED(status)) printf("%s: child exit %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) printf("%s: child signal %d\n", what, WTERMSIG(status));
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char *a = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) { perror("mmap"); return 1; }
    memset(a, 'p', 4 * P);
    int status;

    /* 1. the child maps a page, writes it, unmaps one of the parent's, _exits */
    pid_t pid = vfork();
    if (pid == 0) {
        char *b = mmap(NULL, 2 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (b == MAP_FAILED) _exit(2);
        b[0] = 'c';
        got = b;
        if (munmap(a + 3 * P, P)) _exit(3);
        if (mprotect(a + 2 * P, P, PROT_READ)) _exit(4);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    report("map before _exit", status);
    printf("child's page reads %c, maps %s\n", got[0], in_maps(got));
    printf("protect it: %d\n", mprotect(got, 2 * P, PROT_READ) == 0 ? 0 : errno);
    printf("the page it unmapped: maps %s\n", in_maps(a + 3 * P));
    void *again = mmap(a + 3 * P, P, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("map it again (no replace): %s\n", again == a + 3 * P ? "ok" : strerror(errno));
    printf("the page it protected: maps %s\n", in_maps(a + 2 * P));
    printf("unmap the child's: %d\n", munmap(got, 2 * P) == 0 ? 0 : errno);
    printf("then: maps %s\n", in_maps(got));

    /* 2. the child maps a page, then execs: the page stays the parent's */
    got = NULL;
    pid = vfork();
    if (pid == 0) {
        char *c = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c == MAP_FAILED) _exit(2);
        c[0] = 'e';
        got = c;
        execl("/bin/true", "true", (char *)0);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    report("map before exec", status);
    printf("child's page reads %c, maps %s\n", got[0], in_maps(got));
    printf("unmap it: %d\n", munmap(got, P) == 0 ? 0 : errno);

    /* 3. the child maps a page and is killed (-9) before it execs */
    got = NULL;
    pid = vfork();
    if (pid == 0) {
        char *d = mmap(NULL, 3 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (d == MAP_FAILED) _exit(2);
        d[P] = 'k';
        got = d;
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    waitpid(pid, &status, 0);
    report("map before kill -9", status);
    printf("child's page reads %c, maps %s\n", got[P], in_maps(got));
    printf("remap it: %d\n", mremap(got, 3 * P, 5 * P, MREMAP_MAYMOVE) != MAP_FAILED ? 0 : errno);

    /* 4. a System V attach is one, however many processes share the memory */
    int id = shmget(IPC_PRIVATE, 2 * P, IPC_CREAT | 0600);
    char *shm = id < 0 ? (char *)-1 : shmat(id, NULL, 0);
    if (shm == (char *)-1) { perror("shm"); return 1; }
    nattch = -1;
    pid = vfork();
    if (pid == 0) {
        struct shmid_ds ds;
        if (shmctl(id, IPC_STAT, &ds) == 0) nattch = (long)ds.shm_nattch;
        _exit(0);
    }
    waitpid(pid, &status, 0);
    report("shm attach", status);
    struct shmid_ds ds;
    shmctl(id, IPC_STAT, &ds);
    printf("nattch seen by the child %ld, by the parent %ld\n", nattch, (long)ds.shm_nattch);
    shmctl(id, IPC_RMID, NULL);
    printf("detach: %d\n", shmdt(shm) == 0 ? 0 : errno);

    /* the parent's own memory went through it all */
    printf("parent's pages read %c%c%c, maps %s\n", a[0], a[P], a[2 * P], in_maps(a));
    pid = vfork();
    if (pid == 0) {
        execl("/bin/true", "true", (char *)0);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    report("plain vfork+exec", status);
    return 0;
}
