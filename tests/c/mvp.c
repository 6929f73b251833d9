/* The plan's MVP program (docs/plan.md), as written there,
 * plus the includes it needs. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main() {
    int fd = open("/hello.txt", O_CREAT | O_RDWR, 0644);
    write(fd, "Hello XINIM!\n", 13);
    close(fd);
    printf("Success!\n");
    return 0;
}
