/* net_sizes: socket sends and receives of every size class, as Linux answers them.
   Small sends travel inside the request, bigger ones through a grant (kernel/calls/
   net.py INLINE_SEND): both must look the same to the program -- counts, record
   boundaries, MSG_TRUNC, the bytes themselves, EFAULT for a buffer that is not all
   there, errors for bad fds and lengths -- and poll/epoll see the same readiness.
   Prints one line per case; the test compares the output with a native run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
    fflush(stdout);
}

static unsigned sum(const unsigned char *p, long n) {
    unsigned s = 0;
    for (long i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

static const long SIZES[] = {0, 1, 64, 1023, 1024, 1025, 4095, 4096, 4097, 65536, 300000};
#define NSIZES (sizeof SIZES / sizeof SIZES[0])

static unsigned char out[400000], in[400000];

/* a stream: what a nonblocking send takes, then all of it read back in pieces */
static void stream_case(int type, const char *name) {
    for (unsigned i = 0; i < NSIZES; i++) {
        int sv[2];
        char what[96];
        long n = SIZES[i];
        if (n > 100000) continue;            /* more than sk_sndbuf takes: host-tuned */
        if (socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv) < 0) { perror("socketpair"); exit(1); }
        long sent = send(sv[0], out, n, 0);
        snprintf(what, sizeof what, "%s send %ld", name, n);
        show(what, sent);
        long got = 0, r;
        unsigned s = 0;
        while ((r = recv(sv[1], in + got, sizeof in - got, MSG_DONTWAIT)) > 0)
            got += r;
        snprintf(what, sizeof what, "%s got %ld sum-ok", name, n);
        s = sum(in, got);
        show(what, got == (sent > 0 ? sent : 0) && s == sum(out, got));
        close(sv[0]);
        close(sv[1]);
    }
}

/* records: boundaries kept, a short buffer truncates (MSG_TRUNC says the length) */
static void record_case(int type, const char *name) {
    for (unsigned i = 0; i < NSIZES; i++) {
        int sv[2];
        char what[96];
        long n = SIZES[i];
        if (n > 100000) continue;            /* unix dgram's limit is sk_sndbuf: host-tuned */
        if (socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv) < 0) { perror("socketpair"); exit(1); }
        snprintf(what, sizeof what, "%s send %ld", name, n);
        show(what, send(sv[0], out, n, 0));
        show("  again", send(sv[0], out + 1, n / 2, 0));
        long r = recv(sv[1], in, 512, MSG_TRUNC);
        snprintf(what, sizeof what, "%s recv 512 trunc of %ld", name, n);
        show(what, r);
        show("  bytes ok", memcmp(in, out, n < 512 ? n : 512) == 0);
        struct msghdr m = {0};
        struct iovec iov = {in, sizeof in};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        show("  second recvmsg", recvmsg(sv[1], &m, 0));
        show("  second flags", m.msg_flags);
        show("  second bytes ok", memcmp(in, out + 1, n / 2) == 0);
        show("  empty", recv(sv[1], in, 10, MSG_DONTWAIT));
        close(sv[0]);
        close(sv[1]);
    }
}

static void bad_input(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    /* a buffer whose end is not mapped: Linux copies nothing and says EFAULT */
    unsigned char *pg = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(pg + 4096, 4096);
    memset(pg, 'p', 4096);
    show("send half-mapped 1000", send(sv[0], pg + 4096 - 500, 1000, 0));
    show("send half-mapped 600", send(sv[0], pg + 4096 - 500, 600, 0));
    show("send unmapped 10", send(sv[0], pg + 4096, 10, 0));
    show("send null 1", send(sv[0], NULL, 1, 0));
    show("send null 0", send(sv[0], NULL, 0, 0));
    show("send kernel address", send(sv[0], (void *)0xffff880000000000UL, 16, 0));
    show("nothing arrived", recv(sv[1], in, sizeof in, MSG_DONTWAIT));
    show("send last bytes", send(sv[0], pg + 4096 - 500, 500, 0));
    show("arrived", recv(sv[1], in, sizeof in, MSG_DONTWAIT));
    /* iovecs: an empty one, a NULL empty one, then data; a bad one after good */
    struct iovec v[3] = {{out, 0}, {NULL, 0}, {out, 10}};
    struct msghdr m = {0};
    m.msg_iov = v;
    m.msg_iovlen = 3;
    show("sendmsg empty iovs then 10", sendmsg(sv[0], &m, 0));
    struct iovec w[2] = {{out, 5}, {pg + 4096, 5}};
    m.msg_iov = w;
    m.msg_iovlen = 2;
    show("sendmsg good then bad iov", sendmsg(sv[0], &m, 0));
    show("drain", recv(sv[1], in, sizeof in, MSG_DONTWAIT));
    /* bad fds, a non-socket, bad lengths */
    int p[2];
    pipe(p);
    show("send bad fd", send(999, out, 10, 0));
    show("send -1 fd", send(-1, out, 10, 0));
    show("send pipe", send(p[1], out, 10, 0));
    show("sendto bad addrlen", sendto(sv[0], out, 10, 0, (struct sockaddr *)in, -1));
    show("sendto huge addrlen", sendto(sv[0], out, 10, 0, (struct sockaddr *)in, 4096));
    show("recv bad fd", recv(999, in, 10, 0));
    show("recv bad buf", (send(sv[0], "zz", 2, 0), recv(sv[1], (void *)8, 10, 0)));
    show("recv after bad buf", recv(sv[1], in, 10, MSG_DONTWAIT));
    show("recv half-mapped", (send(sv[0], out, 1000, 0), recv(sv[1], pg + 4096 - 300, 1000, 0)));
    show("recv rest", recv(sv[1], in, sizeof in, MSG_DONTWAIT));
    /* the same through read/write (the VFS forwards them to NET), small and big */
    show("write half-mapped 1000", write(sv[0], pg + 4096 - 500, 1000));
    show("write half-mapped 3000", write(sv[0], pg + 4096 - 500, 3000));
    show("send half-mapped 3000", send(sv[0], pg + 4096 - 500, 3000, 0));
    show("read nothing came", recv(sv[1], in, sizeof in, MSG_DONTWAIT));
    show("read half-mapped", (write(sv[0], out, 2000), read(sv[1], pg + 4096 - 300, 2000)));
    show("read rest", read(sv[1], in, sizeof in));
    show("read rest ok", memcmp(in, out, 2000) == 0);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    /* a datagram that cannot be delivered is gone (Linux dequeues before it copies) */
    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv);
    send(sv[0], "one", 3, 0);
    send(sv[0], "two", 3, 0);
    show("dgram recv bad buf", recv(sv[1], (void *)8, 10, 0));
    show("dgram next", recv(sv[1], in, 10, 0));
    show("dgram next is two", memcmp(in, "two", 3) == 0);
    close(sv[0]);
    close(sv[1]);
}

/* readiness follows small and big sends alike: poll and epoll, across a fork */
static void readiness(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
    struct epoll_event got[4];
    show("epoll empty", epoll_wait(ep, got, 4, 0));
    long sizes[] = {3, 5000};
    for (int k = 0; k < 2; k++) {
        pid_t child = fork();
        if (child == 0) {
            send(sv[0], out, sizes[k], 0);
            _exit(0);
        }
        int n = epoll_wait(ep, got, 4, -1);
        show("epoll woke", n);
        show("  events", n > 0 ? (long)got[0].events : -1);
        show("  data", n > 0 ? (long)got[0].data.u64 : -1);
        struct pollfd pf = {sv[1], POLLIN | POLLOUT, 0};
        show("  poll", poll(&pf, 1, 0));
        show("  revents", pf.revents);
        long total = 0, r;
        while (total < sizes[k] && (r = recv(sv[1], in + total, sizeof in - total, 0)) > 0)
            total += r;
        show("  read", total);
        show("  epoll after read", epoll_wait(ep, got, 4, 0));
        waitpid(child, NULL, 0);
    }
    close(ep);
    close(sv[0]);
    close(sv[1]);
}

int main(void) {
    for (unsigned i = 0; i < sizeof out; i++) out[i] = (unsigned char)(i * 7 + i / 251);
    stream_case(SOCK_STREAM, "stream");
    record_case(SOCK_DGRAM, "dgram");
    record_case(SOCK_SEQPACKET, "seqpacket");
    bad_input();
    readiness();
    return 0;
}
