/* Syscall results copied out to a read-only buffer: Linux's copy_to_user fails
 * with EFAULT and leaves the memory alone.  Prints one line per case and exits
 * 0 when every case gave EFAULT and the read-only data is unchanged. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char rodata[4096] __attribute__((aligned(4096))) = "constant";
static int failures;

static void check(const char *name, long ret) {
    int err = errno;
    int ok = ret == -1 && err == EFAULT;
    printf("%s: %s\n", name, ok ? "EFAULT" : ret == -1 ? strerror(err) : "succeeded");
    failures += !ok;
}

int main(void) {
    int fd = open("/etc/passwd", O_RDONLY);
    if (fd < 0) { perror("open"); return 2; }
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ro == MAP_FAILED) { perror("mmap"); return 2; }
    check("read into .rodata", syscall(SYS_read, fd, (void *)rodata, 5));
    check("read into PROT_READ", syscall(SYS_read, fd, ro, 5));
    check("fstat into PROT_READ", syscall(SYS_fstat, fd, ro));
    check("getcwd into PROT_READ", syscall(SYS_getcwd, ro, 100));
    int unchanged = strcmp(rodata, "constant") == 0 && ro[0] == 0;
    printf("read-only data %s\n", unchanged ? "unchanged" : "CHANGED");
    return failures || !unchanged;
}
