/* 1000 anonymous mappings, every other one unmapped, a range in the middle
 * made PROT_NONE; the program prints what it kept, waits until /tmp/go exists
 * (so the test can compare MM's record with the host's /proc/PID/maps), then
 * touches the PROT_NONE range: it must die by SIGSEGV. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define N 1000
#define LEN (3 * 4096)

int main(int argc, char **argv) {
    static char *maps[N];
    const char *go = argc > 1 ? argv[1] : NULL;
    /* 16 populated pages (before the others, so no hole is reused): MM charges them */
    char *pop = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (pop == MAP_FAILED) { puts("populate"); return 5; }
    for (int i = 0; i < N; i++) {
        /* alternate protections so that neighbours never merge into one */
        int prot = (i % 4 == 0) ? PROT_READ : PROT_READ | PROT_WRITE;
        maps[i] = mmap(NULL, LEN, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (maps[i] == MAP_FAILED) { printf("mmap %d failed\n", i); return 1; }
        if (prot & PROT_WRITE) maps[i][0] = (char)i;
    }
    for (int i = 1; i < N; i += 2)
        if (munmap(maps[i], LEN) != 0) { printf("munmap %d failed\n", i); return 2; }
    /* the middle page of each kept mapping 400..600 becomes PROT_NONE */
    int none = 0;
    for (int i = 400; i <= 600; i += 2) {
        if (mprotect(maps[i] + 4096, 4096, PROT_NONE) != 0) { printf("mprotect %d\n", i); return 3; }
        none++;
    }
    /* and a whole range: the kept mapping 500, all three pages */
    if (mprotect(maps[500], LEN, PROT_NONE) != 0) { puts("mprotect 500"); return 4; }
    for (int i = 0; i < N; i++)
        printf("%c %lx %lx %d\n", i % 2 ? 'U' : 'R', (unsigned long)maps[i], (unsigned long)LEN, i);
    printf("P %lx %x\n", (unsigned long)pop, 16 * 4096);
    printf("READY pid=%d none=%d\n", getpid(), none);
    fflush(stdout);
    if (go) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        for (int t = 0; access(go, F_OK) != 0; t++) {
            if (t > 6000) { puts("no go"); return 7; }
            nanosleep(&ts, NULL);
        }
    }
    printf("touching %p\n", maps[500] + 4096);
    fflush(stdout);
    volatile char *p = maps[500] + 4096;
    *p = 1;                               /* SIGSEGV */
    puts("still alive");
    return 6;
}
