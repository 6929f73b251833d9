/* Plan §8.2 test 3: sbrk moves the break by exactly what was asked; an
 * anonymous private mapping is usable and unmaps cleanly. */
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    char *b0 = sbrk(0);
    if (b0 == (void *)-1) { perror("sbrk(0)"); return 1; }
    char *old = sbrk(4096);
    if (old == (void *)-1) { perror("sbrk(4096)"); return 2; }
    char *b1 = sbrk(0);
    if (old != b0 || b1 - b0 != 4096) {
        printf("break moved by %ld (old %p, start %p)\n", (long)(b1 - b0), old, b0);
        return 3;
    }
    memset(b0, 0xA5, 4096);               /* the new heap page is usable */
    if ((unsigned char)b0[4095] != 0xA5) return 4;
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) { perror("mmap"); return 5; }
    if (((uintptr_t)m & 4095) != 0) return 6;
    for (int i = 0; i < 8192; i++)
        if (m[i] != 0) { printf("mapping not zeroed at %d\n", i); return 7; }
    memset(m, 'x', 8192);
    if (m[0] != 'x' || m[8191] != 'x') return 8;
    if (munmap(m, 8192) != 0) { perror("munmap"); return 9; }
    if (sbrk(-4096) == (void *)-1 || sbrk(0) != b0) { puts("shrink failed"); return 10; }
    printf("sbrk ok: break %p -> %p, mmap at %p\n", b0, b1, m);
    return 0;
}
