/* Socket calls with bad input and edge cases: one line per case, "name: result errno".
   Run natively and under xinim-run; the outputs must be the same (tests/test_net.py). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *name, long r) {
    printf("%s: %ld %s\n", name, r < 0 ? -1L : r, r < 0 ? strerrorname_np(errno) : "-");
    fflush(stdout);
}

static socklen_t un_addr(struct sockaddr_un *sa, const char *path, int abstract) {
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (abstract) {
        memcpy(sa->sun_path + 1, path, strlen(path));
        return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path);
    }
    strcpy(sa->sun_path, path);
    return sizeof *sa;
}

static int send_fd(int sock, int fd) {
    char byte = 'x', buf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&byte, 1};
    struct msghdr m = {0};
    m.msg_iov = &iov; m.msg_iovlen = 1; m.msg_control = buf; m.msg_controllen = sizeof buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &m, 0);
}

static int recv_fd(int sock) {
    char byte, buf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&byte, 1};
    struct msghdr m = {0};
    m.msg_iov = &iov; m.msg_iovlen = 1; m.msg_control = buf; m.msg_controllen = sizeof buf;
    if (recvmsg(sock, &m, 0) < 0) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_RIGHTS) { errno = ENOMSG; return -1; }
    int fd; memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[200], path2[200], file[200];
    snprintf(path, sizeof path, "%s/ne.sock", dir);
    snprintf(path2, sizeof path2, "%s/ne2.sock", dir);
    snprintf(file, sizeof file, "%s/ne.file", dir);
    unlink(path); unlink(path2); unlink(file);
    struct sockaddr_un sa; socklen_t sl;
    int a, s, t, sv[2];
    char buf[64];

    show("socket bad family", socket(9999, SOCK_STREAM, 0));
    show("socket AF_MAX", socket(46, SOCK_STREAM, 0));
    show("socket unix proto 7", socket(AF_UNIX, SOCK_STREAM, 7));
    show("socket inet stream udp", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
    show("socket bad type", socket(AF_UNIX, 99, 0));
    show("socket bad flags", socket(AF_UNIX, SOCK_STREAM | 0x100, 0));
    show("socket unix raw is dgram", (s = socket(AF_UNIX, SOCK_RAW, 0)) >= 0);
    int ty = 0; socklen_t tl = sizeof ty;
    getsockopt(s, SOL_SOCKET, SO_TYPE, &ty, &tl); show("SO_TYPE raw", ty); close(s);
    show("socketpair inet", socketpair(AF_INET, SOCK_STREAM, 0, sv));
    show("socketpair bad sv", socketpair(AF_UNIX, SOCK_STREAM, 0, (int *)8));

    int f = open(file, O_CREAT | O_RDWR, 0644);
    sl = un_addr(&sa, path, 0);
    show("bind file fd", bind(f, (struct sockaddr *)&sa, sl));
    show("connect bad fd", connect(999, (struct sockaddr *)&sa, sl));
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    show("bind len -1", bind(s, (struct sockaddr *)&sa, (socklen_t)-1));
    show("bind len 200", bind(s, (struct sockaddr *)&sa, 200));
    show("bind len 1", bind(s, (struct sockaddr *)&sa, 1));
    show("bind bad ptr", bind(s, (struct sockaddr *)8, sl));
    show("bind", bind(s, (struct sockaddr *)&sa, sl));
    struct stat st; stat(path, &st);
    show("is socket inode", S_ISSOCK(st.st_mode));
    show("bind again", bind(s, (struct sockaddr *)&sa, sl));
    t = socket(AF_UNIX, SOCK_STREAM, 0);
    show("bind in use", bind(t, (struct sockaddr *)&sa, sl));
    show("connect not listening", connect(t, (struct sockaddr *)&sa, sl));
    show("accept not listening", accept(s, NULL, NULL));
    show("listen", listen(s, 1));
    int fl = fcntl(s, F_GETFL); fcntl(s, F_SETFL, fl | O_NONBLOCK);
    show("accept nonblock empty", accept(s, NULL, NULL));
    show("connect", connect(t, (struct sockaddr *)&sa, sl));
    show("connect again", connect(t, (struct sockaddr *)&sa, sl));
    struct sockaddr_un peer; socklen_t pl = sizeof peer;
    a = accept4(s, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
    show("accept4", a >= 0);
    show("accept4 peer len", pl);
    show("accept4 cloexec", fcntl(a, F_GETFD) & FD_CLOEXEC);
    show("accept4 bad flags", accept4(s, NULL, NULL, 0x1234));
    pl = sizeof peer;
    show("getsockname", getsockname(a, (struct sockaddr *)&peer, &pl));
    show("getsockname len", pl == offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    show("getsockname path", strcmp(peer.sun_path, path) == 0);
    pl = sizeof peer;
    show("getpeername unbound peer", getpeername(a, (struct sockaddr *)&peer, &pl));
    show("getpeername len", pl);
    show("send", send(t, "hello", 5, 0));
    show("recv peek", recv(a, buf, sizeof buf, MSG_PEEK));
    show("recv", recv(a, buf, sizeof buf, 0));
    show("recv dontwait", recv(a, buf, sizeof buf, MSG_DONTWAIT));
    show("send bad buf", send(t, (void *)8, 5, 0));
    show("recv bad buf len", recv(a, buf, sizeof buf, MSG_DONTWAIT));
    show("sendto on stream", sendto(t, "x", 1, 0, (struct sockaddr *)&sa, sl));
    show("shutdown bad how", shutdown(t, 7));
    show("shutdown wr", shutdown(t, SHUT_WR));
    show("send after shutdown", send(t, "x", 1, MSG_NOSIGNAL));
    show("recv eof", recv(a, buf, sizeof buf, 0));
    close(a); close(t);
    /* reset: the closer had unread data */
    t = socket(AF_UNIX, SOCK_STREAM, 0);
    connect(t, (struct sockaddr *)&sa, sl);
    a = accept(s, NULL, NULL);
    send(t, "unread", 6, 0);
    close(a);
    show("recv after reset", recv(t, buf, sizeof buf, 0));
    show("recv after reset again", recv(t, buf, sizeof buf, 0));
    close(t);
    close(s);
    show("unlink", unlink(path));
    show("stat after unlink", stat(path, &st));
    t = socket(AF_UNIX, SOCK_STREAM, 0);
    show("connect missing", connect(t, (struct sockaddr *)&sa, sl));
    sl = un_addr(&sa, file, 0);
    show("connect regular file", connect(t, (struct sockaddr *)&sa, sl));
    close(t);

    /* unconnected stream socket */
    t = socket(AF_UNIX, SOCK_STREAM, 0);
    show("send unconnected", send(t, "x", 1, MSG_NOSIGNAL));
    show("recv unconnected", recv(t, buf, 1, MSG_DONTWAIT));
    pl = sizeof peer;
    show("getpeername unconnected", getpeername(t, (struct sockaddr *)&peer, &pl));
    struct pollfd pf = {t, POLLIN | POLLOUT, 0};
    show("poll unconnected", poll(&pf, 1, 0));
    show("poll unconnected revents", pf.revents);
    close(t);

    /* datagrams and abstract names */
    s = socket(AF_UNIX, SOCK_DGRAM, 0);
    sl = un_addr(&sa, "xinim-net-errno", 1);
    show("bind abstract", bind(s, (struct sockaddr *)&sa, sl));
    t = socket(AF_UNIX, SOCK_DGRAM, 0);
    show("bind abstract in use", bind(t, (struct sockaddr *)&sa, sl));
    show("listen dgram", listen(t, 1));
    show("send dgram unconnected", send(t, "x", 1, 0));
    show("sendto abstract", sendto(t, "datagram", 8, 0, (struct sockaddr *)&sa, sl));
    pl = sizeof peer;
    show("recvfrom trunc", recvfrom(s, buf, 4, MSG_TRUNC, (struct sockaddr *)&peer, &pl));
    show("recvfrom unbound sender len", pl);
    show("connect dgram", connect(t, (struct sockaddr *)&sa, sl));
    show("send dgram", send(t, "abc", 3, 0));
    struct iovec iov = {buf, 2};
    struct msghdr mh = {0}; mh.msg_iov = &iov; mh.msg_iovlen = 1;
    show("recvmsg short", recvmsg(s, &mh, 0));
    show("recvmsg flags", mh.msg_flags);
    close(s);
    show("send to closed", send(t, "abc", 3, 0));
    close(t);

    /* socketpair: EPIPE, SIGPIPE, options, credentials */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct ucred cr; socklen_t cl = sizeof cr;
    getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cr, &cl);
    show("SO_PEERCRED pid is mine", cr.pid == getpid());
    show("SO_PEERCRED uid", cr.uid);
    int v = 1; socklen_t vl = sizeof v;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &vl);
    show("SO_SNDBUF min", v);
    v = 1; setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    getsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &v, &vl);
    show("SO_RCVBUF min", v);
    show("setsockopt bad level", setsockopt(sv[0], 6, TCP_NODELAY, &v, sizeof v));
    show("setsockopt unknown", setsockopt(sv[0], SOL_SOCKET, 9999, &v, sizeof v));
    show("setsockopt short", setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &v, 2));
    vl = 2; v = 0;
    show("getsockopt short len", getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &vl));
    show("getsockopt short len value", vl);
    vl = (socklen_t)-1;
    show("getsockopt neg len", getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &vl));
    show("SO_ERROR", (vl = sizeof v, getsockopt(sv[0], SOL_SOCKET, SO_ERROR, &v, &vl), v));
    close(sv[1]);
    signal(SIGPIPE, SIG_IGN);
    show("send peer closed", send(sv[0], "x", 1, 0));
    show("write peer closed", write(sv[0], "x", 1));
    signal(SIGPIPE, SIG_DFL);
    show("send nosignal", send(sv[0], "x", 1, MSG_NOSIGNAL));
    pid_t pid = fork();
    if (pid == 0) { write(sv[0], "x", 1); _exit(0); }
    int status; waitpid(pid, &status, 0);
    show("child killed by", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    close(sv[0]);

    /* SCM_RIGHTS of a pipe end, a socket and an eventfd across fork */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid = fork();
    if (pid == 0) {
        int p[2]; pipe(p); write(p[1], "via pipe", 8); close(p[1]);
        send_fd(sv[1], p[0]);
        int q[2]; socketpair(AF_UNIX, SOCK_STREAM, 0, q); write(q[0], "via socket", 10);
        send_fd(sv[1], q[1]);
        int e = eventfd(7, 0);
        if (e >= 0) send_fd(sv[1], e); else send(sv[1], "n", 1, 0);
        _exit(0);
    }
    int got = recv_fd(sv[0]);
    memset(buf, 0, sizeof buf);
    show("pipe end passed", got >= 0 && read(got, buf, sizeof buf) == 8 && !strcmp(buf, "via pipe"));
    got = recv_fd(sv[0]);
    memset(buf, 0, sizeof buf);
    show("socket passed", got >= 0 && read(got, buf, sizeof buf) == 10);
    got = recv_fd(sv[0]);
    uint64_t ev = 0;
    show("eventfd passed", got >= 0 && read(got, &ev, 8) == 8 && ev == 7);
    waitpid(pid, &status, 0);
    close(sv[0]); close(sv[1]);

    /* control buffers: too big, too short, a bad header, a bad fd before a bad header */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    {
        char byte = 'x', ctl[64] = {0};
        struct iovec iv = {&byte, 1};
        struct msghdr m = {0};
        m.msg_iov = &iv; m.msg_iovlen = 1; m.msg_control = ctl;
        m.msg_controllen = 0x7fffffff;
        show("sendmsg huge controllen", sendmsg(sv[0], &m, 0));
        m.msg_controllen = 8;
        show("sendmsg short controllen", sendmsg(sv[0], &m, 0));
        struct cmsghdr *ch = (struct cmsghdr *)ctl;
        ch->cmsg_len = 100; ch->cmsg_level = SOL_SOCKET; ch->cmsg_type = SCM_RIGHTS;
        m.msg_controllen = 64;
        show("sendmsg bad cmsg_len", sendmsg(sv[0], &m, 0));
        ch->cmsg_len = 20; *(int *)(ctl + 16) = 999;
        show("sendmsg bad fd first", sendmsg(sv[0], &m, 0));
        m.msg_name = &sa; m.msg_namelen = un_addr(&sa, "/nonexistent/x", 0);
        ch->cmsg_len = 20; *(int *)(ctl + 16) = 0; m.msg_controllen = 24;
        show("sendmsg name on stream", sendmsg(sv[0], &m, 0));
    }
    close(sv[0]); close(sv[1]);

    /* receiving ancillary data: too little room (MSG_CTRUNC), MSG_CMSG_CLOEXEC,
       credentials and rights together, a bound datagram sender's name */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    {
        int three[3] = {0, 1, 2};
        char byte = 'x', ctl[CMSG_SPACE(sizeof three)];
        struct iovec iv = {&byte, 1};
        struct msghdr m = {0};
        m.msg_iov = &iv; m.msg_iovlen = 1; m.msg_control = ctl; m.msg_controllen = sizeof ctl;
        struct cmsghdr *ch = CMSG_FIRSTHDR(&m);
        ch->cmsg_level = SOL_SOCKET; ch->cmsg_type = SCM_RIGHTS; ch->cmsg_len = CMSG_LEN(sizeof three);
        memcpy(CMSG_DATA(ch), three, sizeof three);
        show("send three fds", sendmsg(sv[0], &m, 0));
        char small[CMSG_SPACE(sizeof(int))];
        struct msghdr r = {0}; char rb;
        struct iovec riv = {&rb, 1};
        r.msg_iov = &riv; r.msg_iovlen = 1; r.msg_control = small; r.msg_controllen = sizeof small;
        show("recv into room for one", recvmsg(sv[1], &r, MSG_CMSG_CLOEXEC));
        show("recv flags ctrunc", r.msg_flags & MSG_CTRUNC);
        show("recv controllen", r.msg_controllen);
        ch = CMSG_FIRSTHDR(&r);
        int got1; memcpy(&got1, CMSG_DATA(ch), sizeof got1);
        show("cloexec on received fd", fcntl(got1, F_GETFD) & FD_CLOEXEC);
        close(got1);
        int one = 1; setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
        ch = CMSG_FIRSTHDR(&m); ch->cmsg_len = CMSG_LEN(sizeof(int)); m.msg_controllen = CMSG_SPACE(sizeof(int));
        sendmsg(sv[0], &m, 0);
        char big[256]; r.msg_control = big; r.msg_controllen = sizeof big; r.msg_flags = 0;
        show("recv creds and rights", recvmsg(sv[1], &r, 0));
        ch = CMSG_FIRSTHDR(&r);
        show("first cmsg type", ch->cmsg_type);
        ch = CMSG_NXTHDR(&r, ch);
        show("second cmsg type", ch ? ch->cmsg_type : -1);
        show("controllen both", r.msg_controllen);
        if (ch) { int g; memcpy(&g, CMSG_DATA(ch), sizeof g); close(g); }
    }
    close(sv[0]); close(sv[1]);
    s = socket(AF_UNIX, SOCK_DGRAM, 0);
    t = socket(AF_UNIX, SOCK_DGRAM, 0);
    sl = un_addr(&sa, path, 0); unlink(path);
    bind(t, (struct sockaddr *)&sa, sl);
    struct sockaddr_un dst; socklen_t dl = un_addr(&dst, "xinim-dgram-dst", 1);
    bind(s, (struct sockaddr *)&dst, dl);
    sendto(t, "named", 5, 0, (struct sockaddr *)&dst, dl);
    pl = sizeof peer;
    show("recvfrom named sender", recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&peer, &pl));
    show("named sender len ok", pl == offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    close(s); close(t); unlink(path);

    /* sendmmsg / recvmmsg on datagrams; MSG_WAITFORONE */
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    {
        struct mmsghdr mm[3];
        struct iovec iv[3];
        char bufs[3][16];
        const char *words[3] = {"one", "three", "fivefive"};
        memset(mm, 0, sizeof mm);
        for (int i = 0; i < 3; i++) {
            iv[i].iov_base = (void *)words[i]; iv[i].iov_len = strlen(words[i]);
            mm[i].msg_hdr.msg_iov = &iv[i]; mm[i].msg_hdr.msg_iovlen = 1;
        }
        show("sendmmsg", sendmmsg(sv[0], mm, 3, 0));
        show("sendmmsg len 2", mm[2].msg_len);
        memset(mm, 0, sizeof mm);
        for (int i = 0; i < 3; i++) {
            iv[i].iov_base = bufs[i]; iv[i].iov_len = sizeof bufs[i];
            mm[i].msg_hdr.msg_iov = &iv[i]; mm[i].msg_hdr.msg_iovlen = 1;
        }
        show("recvmmsg", recvmmsg(sv[1], mm, 3, MSG_WAITFORONE, NULL));
        show("recvmmsg lens", mm[0].msg_len * 100 + mm[1].msg_len * 10 + mm[2].msg_len);
        show("recvmmsg empty nonblock", recvmmsg(sv[1], mm, 3, MSG_DONTWAIT, NULL));
        /* one datagram, then EAGAIN: the time left is written back all the same */
        show("send one", send(sv[0], "x", 1, 0));
        struct timespec left = {5, 0};
        show("recvmmsg one of 3", recvmmsg(sv[1], mm, 3, MSG_WAITFORONE, &left));
        show("recvmmsg time left written", left.tv_sec == 4 && left.tv_nsec > 0);
    }
    close(sv[0]); close(sv[1]);

    /* TCP on loopback */
    s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {0}; in.sin_family = AF_INET; in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    show("tcp bind", bind(s, (struct sockaddr *)&in, sizeof in));
    socklen_t il = sizeof in; getsockname(s, (struct sockaddr *)&in, &il);
    show("tcp listen", listen(s, 4));
    t = socket(AF_INET, SOCK_STREAM, 0);
    show("tcp bind in use", bind(t, (struct sockaddr *)&in, sizeof in));
    close(t);
    t = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(t, (struct sockaddr *)&in, sizeof in);
    show("tcp nonblock connect", r == 0 || errno == EINPROGRESS);
    pf.fd = t; pf.events = POLLOUT; pf.revents = 0;
    show("tcp poll connect", poll(&pf, 1, 5000));
    v = -1; vl = sizeof v; getsockopt(t, SOL_SOCKET, SO_ERROR, &v, &vl);
    show("tcp SO_ERROR", v);
    a = accept(s, NULL, NULL);
    show("tcp accept", a >= 0);
    v = 1; show("TCP_NODELAY", setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v));
    show("tcp send", send(t, "over tcp", 8, 0));
    pf.fd = a; pf.events = POLLIN; pf.revents = 0;
    show("tcp poll data", poll(&pf, 1, 5000));
    memset(buf, 0, sizeof buf);
    show("tcp recv", recv(a, buf, sizeof buf, 0));
    show("tcp connect again", connect(t, (struct sockaddr *)&in, sizeof in));
    close(t); close(a); close(s);
    t = socket(AF_INET, SOCK_STREAM, 0);
    show("tcp connect refused", connect(t, (struct sockaddr *)&in, sizeof in));
    close(t);
    /* UDP */
    s = socket(AF_INET, SOCK_DGRAM, 0);
    in.sin_port = 0;
    bind(s, (struct sockaddr *)&in, sizeof in);
    il = sizeof in; getsockname(s, (struct sockaddr *)&in, &il);
    t = socket(AF_INET, SOCK_DGRAM, 0);
    show("udp sendto", sendto(t, "udp!", 4, 0, (struct sockaddr *)&in, sizeof in));
    show("udp recv", recv(s, buf, sizeof buf, 0));
    close(s); close(t);

    /* permission: a socket others may not write */
    if (geteuid() == 0) {
        s = socket(AF_UNIX, SOCK_STREAM, 0);
        sl = un_addr(&sa, path2, 0);
        umask(022);
        bind(s, (struct sockaddr *)&sa, sl);
        listen(s, 1);
        pid = fork();
        if (pid == 0) {
            if (setuid(65534) != 0) _exit(2);
            int c = socket(AF_UNIX, SOCK_STREAM, 0);
            _exit(connect(c, (struct sockaddr *)&sa, sl) < 0 && errno == EACCES ? 0 : 1);
        }
        waitpid(pid, &status, 0);
        show("connect no write permission is EACCES", WEXITSTATUS(status) == 0);
        close(s); unlink(path2);
    }
    unlink(file);
    return 0;
}
