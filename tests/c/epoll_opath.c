/* epoll with O_PATH descriptors: Linux's fdget does not see them, so both
 * epoll_ctl's fd and epfd and epoll_wait's epfd say EBADF (LTP epoll_ctl06);
 * argv[1] is a directory to make a file in. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static const char *res(int r) { return r >= 0 ? "ok" : strerror(errno); }

int main(int argc, char **argv) {
    char path[4096];
    if (argc < 2)
        return 2;
    /* as LTP's tst_fd: a relative name in the working directory */
    if (chdir(argv[1]) < 0) {
        perror("chdir");
        return 1;
    }
    snprintf(path, sizeof path, "fd_file");
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);                     /* as LTP's tst_fd: only the O_PATH fd is left */
    int pfd = open(path, O_PATH);
    unlink(path);
    fd = open(argv[1], O_RDONLY | O_DIRECTORY);
    int pipes[2];
    int ep = epoll_create1(0);
    if (fd < 0 || pfd < 0 || ep < 0 || pipe(pipes) < 0) {
        perror("setup");
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    printf("ctl add O_PATH file: %s\n", res(epoll_ctl(ep, EPOLL_CTL_ADD, pfd, &ev)));
    printf("ctl add directory: %s\n", res(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)));
    printf("ctl add pipe: %s\n", res(epoll_ctl(ep, EPOLL_CTL_ADD, pipes[0], &ev)));
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", ep);
    int pep = open(self, O_PATH);
    printf("open O_PATH of epoll: %s\n", res(pep));
    if (pep >= 0) {
        printf("ctl on O_PATH epfd: %s\n", res(epoll_ctl(pep, EPOLL_CTL_ADD, pipes[1], &ev)));
        printf("wait on O_PATH epfd: %s\n", res(epoll_wait(pep, &ev, 1, 0)));
    }
    printf("wait: %s\n", res(epoll_wait(ep, &ev, 1, 0)));
    return 0;
}
