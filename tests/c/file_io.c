/* The plan's integration test 1, "Full File I/O" (docs/plan.md),
 * as a program: the asserts are the plan's; NDEBUG must not be defined. */
#undef NDEBUG
#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    int fd = open("/test.txt", O_CREAT | O_RDWR, 0644);
    assert(fd >= 0);
    write(fd, "Hello XINIM", 11);
    lseek(fd, 0, SEEK_SET);
    char buf[20];
    int n = read(fd, buf, 11);
    assert(n == 11);
    assert(memcmp(buf, "Hello XINIM", 11) == 0);
    close(fd);
    printf("file I/O ok\n");
    return 0;
}
