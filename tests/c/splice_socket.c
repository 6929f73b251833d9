/* splice between pipes and a socket (NET's): the bytes arrive whole and in
 * order, the errors are Linux's.  Prints facts only (no counts that depend on
 * buffer sizes).  LTP splice05. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 20000

static const char *err(long r) {
    if (r >= 0) return "OK";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case ESPIPE: return "ESPIPE";
    case EINVAL: return "EINVAL";
    default: return strerror(errno);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    static char in[N], out[N];
    int p1[2], p2[2], sv[2];
    for (int i = 0; i < N; i++)
        in[i] = (char)(i * 7);
    if (pipe(p1) || pipe(p2) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return 2;
    fcntl(p1[1], F_SETPIPE_SZ, 65536);
    if (write(p1[1], in, N) != N)
        return 3;
    for (int left = N; left > 0;) {
        ssize_t n = splice(p1[0], NULL, sv[0], NULL, left, 0);
        if (n <= 0) { printf("pipe -> socket: %s\n", err(n)); return 4; }
        left -= n;
    }
    int got = 0;
    while (got < N) {
        ssize_t n = splice(sv[1], NULL, p2[1], NULL, N - got, 0);
        if (n <= 0) { printf("socket -> pipe: %s\n", err(n)); return 5; }
        if (read(p2[0], out + got, n) != n)
            return 6;
        got += n;
    }
    printf("round trip: %s\n", memcmp(in, out, N) ? "differs" : "same bytes");
    printf("empty socket, SPLICE_F_NONBLOCK: %s\n",
           err(splice(sv[1], NULL, p2[1], NULL, 100, SPLICE_F_NONBLOCK)));
    loff_t off = 0;
    printf("socket with an offset: %s\n", err(splice(sv[1], &off, p2[1], NULL, 100, 0)));
    printf("socket to socket: %s\n", err(splice(sv[1], NULL, sv[0], NULL, 100, 0)));
    /* an empty pipe: the splice waits for the child's write */
    pid_t pid = fork();
    if (pid == 0) {
        write(p1[1], "late", 4);
        _exit(0);
    }
    ssize_t n = splice(p1[0], NULL, sv[0], NULL, 100, 0);
    char buf[8] = "";
    read(sv[1], buf, n > 0 ? n : 0);
    printf("waited for the pipe: %zd %s\n", n, buf);
    waitpid(pid, NULL, 0);
    close(sv[0]);
    printf("peer closed: %zd\n", splice(sv[1], NULL, p2[1], NULL, 100, 0));
    return 0;
}
