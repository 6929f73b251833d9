/* A minimal in-memory FUSE filesystem on libfuse 3's low-level API: the
 * reference column ("libfuse C") of bench/fuse.py.
 *
 *     memfs_ll MOUNTPOINT [-v] [-s US]
 *
 * It answers what bench/fuse.py asks of the xinim export (lookup, create,
 * getattr, setattr, open/read/write/release, unlink, mkdir/rmdir, readdir,
 * forget) the way the export does -- 1 s entry and attribute timeouts,
 * cached negative entries, keep_cache, FLUSH answered ENOSYS, no writeback
 * cache, default_permissions, one thread -- with no work of its own beyond a
 * memcpy per write and an iovec per read: what is left of its cost is FUSE's
 * (the kernel's requests, the process switches, libfuse's copy from the
 * request buffer).  Data lives in 1 MiB chunks, so a 1 MiB write is one
 * memcpy and a read is answered from the chunks with no copy of ours.
 * Directories are scanned linearly: the bench keeps a handful of names.
 * Prints "ready" once mounted; SIGTERM unmounts and exits (-v: and prints
 * how many requests of each kind it answered, to stderr).  -s US: before
 * each blocking read of /dev/fuse, poll it for up to US microseconds (what
 * xinim_host/vfs_fuse/fuse_loop.py does), to see FUSE's floor with the same
 * loop.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define MAX_NODES 65536
#define TIMEOUT 1.0

struct node {
    int used;
    fuse_ino_t parent;
    char name[256];
    struct stat st;
    uint64_t nlookup;
    int linked;                 /* has a name */
    int opens;
    char **chunks;              /* regular files: size/CHUNK + 1 chunk pointers */
    size_t nchunks;
    uint64_t generation;
};

enum { N_LOOKUP, N_FORGET, N_FORGET_MULTI, N_GETATTR, N_SETATTR, N_MKDIR, N_CREATE, N_UNLINK,
       N_RMDIR, N_OPEN, N_RELEASE, N_FLUSH, N_READ, N_WRITE, N_OPENDIR, N_READDIR,
       N_RELEASEDIR, N_OPS };
static const char *const op_names[N_OPS] = {
    "lookup", "forget", "forget_multi", "getattr", "setattr", "mkdir", "create", "unlink",
    "rmdir", "open", "release", "flush", "read", "write", "opendir", "readdir", "releasedir"};
static unsigned long counts[N_OPS];     /* requests answered (-v prints them at exit) */
static struct node nodes[MAX_NODES];
static fuse_ino_t next_free = 2;

static void now(struct timespec *ts) { clock_gettime(CLOCK_REALTIME, ts); }

static struct node *get(fuse_ino_t ino)
{
    if (ino < 1 || ino >= MAX_NODES || !nodes[ino].used)
        return NULL;
    return &nodes[ino];
}

static fuse_ino_t find(fuse_ino_t parent, const char *name)
{
    for (fuse_ino_t i = 2; i < next_free; i++)
        if (nodes[i].used && nodes[i].linked && nodes[i].parent == parent &&
            strcmp(nodes[i].name, name) == 0)
            return i;
    return 0;
}

static fuse_ino_t alloc_node(void)
{
    for (fuse_ino_t i = 2; i < MAX_NODES; i++) {
        if (!nodes[i].used) {
            if (i >= next_free)
                next_free = i + 1;
            return i;
        }
    }
    return 0;
}

static void free_data(struct node *n)
{
    for (size_t i = 0; i < n->nchunks; i++)
        free(n->chunks[i]);
    free(n->chunks);
    n->chunks = NULL;
    n->nchunks = 0;
}

static void maybe_free(fuse_ino_t ino)
{
    struct node *n = &nodes[ino];
    if (n->used && !n->linked && n->nlookup == 0 && n->opens == 0) {
        free_data(n);
        n->used = 0;
        n->generation++;
    }
}

static void fill_entry(struct fuse_entry_param *e, fuse_ino_t ino)
{
    memset(e, 0, sizeof(*e));
    e->ino = ino;
    e->generation = nodes[ino].generation;
    e->attr = nodes[ino].st;
    e->attr_timeout = TIMEOUT;
    e->entry_timeout = TIMEOUT;
}

static void touch_dir(fuse_ino_t dir)
{
    struct timespec ts;
    now(&ts);
    nodes[dir].st.st_mtim = nodes[dir].st.st_ctim = ts;
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    counts[N_LOOKUP]++;
    struct fuse_entry_param e;
    fuse_ino_t ino = find(parent, name);
    if (!ino) {                 /* a negative entry the kernel may cache */
        memset(&e, 0, sizeof(e));
        e.entry_timeout = TIMEOUT;
        fuse_reply_entry(req, &e);
        return;
    }
    nodes[ino].nlookup++;
    fill_entry(&e, ino);
    fuse_reply_entry(req, &e);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    counts[N_FORGET]++;
    struct node *n = get(ino);
    if (n) {
        n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
        maybe_free(ino);
    }
    fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
    counts[N_FORGET_MULTI]++;
    for (size_t i = 0; i < count; i++) {
        struct node *n = get(f[i].ino);
        if (n) {
            n->nlookup = n->nlookup > f[i].nlookup ? n->nlookup - f[i].nlookup : 0;
            maybe_free(f[i].ino);
        }
    }
    fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    counts[N_GETATTR]++;
    (void)fi;
    struct node *n = get(ino);
    if (!n) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fuse_reply_attr(req, &n->st, TIMEOUT);
}

static int resize(struct node *n, off_t size)
{
    size_t need = size ? (size_t)((size - 1) / CHUNK + 1) : 0;
    if (need < n->nchunks) {
        for (size_t i = need; i < n->nchunks; i++)
            free(n->chunks[i]);
        n->nchunks = need;
    } else if (need > n->nchunks) {
        char **c = realloc(n->chunks, need * sizeof(char *));
        if (!c)
            return ENOMEM;
        n->chunks = c;
        for (size_t i = n->nchunks; i < need; i++) {
            c[i] = calloc(1, CHUNK);
            if (!c[i]) {
                n->nchunks = i;
                return ENOMEM;
            }
        }
        n->nchunks = need;
    }
    if (size < n->st.st_size && size % CHUNK)     /* zero what was cut off the last chunk */
        memset(n->chunks[size / CHUNK] + size % CHUNK, 0, CHUNK - size % CHUNK);
    n->st.st_size = size;
    n->st.st_blocks = (blkcnt_t)n->nchunks * (CHUNK / 512);
    return 0;
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    counts[N_SETATTR]++;
    (void)fi;
    struct node *n = get(ino);
    struct timespec ts;
    if (!n) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    now(&ts);
    if (to_set & FUSE_SET_ATTR_SIZE) {
        int err = resize(n, attr->st_size);
        if (err) {
            fuse_reply_err(req, err);
            return;
        }
        n->st.st_mtim = ts;
    }
    if (to_set & FUSE_SET_ATTR_MODE)
        n->st.st_mode = (n->st.st_mode & S_IFMT) | (attr->st_mode & 07777);
    if (to_set & FUSE_SET_ATTR_UID)
        n->st.st_uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID)
        n->st.st_gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_ATIME)
        n->st.st_atim = attr->st_atim;
    if (to_set & FUSE_SET_ATTR_ATIME_NOW)
        n->st.st_atim = ts;
    if (to_set & FUSE_SET_ATTR_MTIME)
        n->st.st_mtim = attr->st_mtim;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW)
        n->st.st_mtim = ts;
    n->st.st_ctim = ts;
    fuse_reply_attr(req, &n->st, TIMEOUT);
}

static fuse_ino_t make(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct node *p = get(parent);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct timespec ts;
    fuse_ino_t ino;
    if (!p || !S_ISDIR(p->st.st_mode)) {
        fuse_reply_err(req, ENOTDIR);
        return 0;
    }
    if (strlen(name) > 255) {
        fuse_reply_err(req, ENAMETOOLONG);
        return 0;
    }
    if (find(parent, name)) {
        fuse_reply_err(req, EEXIST);
        return 0;
    }
    ino = alloc_node();
    if (!ino) {
        fuse_reply_err(req, ENOSPC);
        return 0;
    }
    struct node *n = &nodes[ino];
    uint64_t gen = n->generation;
    memset(n, 0, sizeof(*n));
    n->generation = gen;
    n->used = 1;
    n->linked = 1;
    n->parent = parent;
    strcpy(n->name, name);
    now(&ts);
    n->st.st_ino = ino;
    n->st.st_mode = mode;
    n->st.st_nlink = S_ISDIR(mode) ? 2 : 1;
    n->st.st_uid = ctx->uid;
    n->st.st_gid = ctx->gid;
    n->st.st_blksize = 4096;
    n->st.st_atim = n->st.st_mtim = n->st.st_ctim = ts;
    if (S_ISDIR(mode))
        p->st.st_nlink++;
    touch_dir(parent);
    n->nlookup = 1;
    return ino;
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    counts[N_MKDIR]++;
    struct fuse_entry_param e;
    fuse_ino_t ino = make(req, parent, name, S_IFDIR | (mode & 07777));
    if (!ino)
        return;
    fill_entry(&e, ino);
    fuse_reply_entry(req, &e);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    counts[N_CREATE]++;
    struct fuse_entry_param e;
    fuse_ino_t ino = make(req, parent, name, S_IFREG | (mode & 07777));
    if (!ino)
        return;
    nodes[ino].opens++;
    fi->fh = ino;
    fi->keep_cache = 1;
    fill_entry(&e, ino);
    fuse_reply_create(req, &e, fi);
}

static void unlink_node(fuse_req_t req, fuse_ino_t parent, const char *name, int dir)
{
    fuse_ino_t ino = find(parent, name);
    if (!ino) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct node *n = &nodes[ino];
    if (dir != !!S_ISDIR(n->st.st_mode)) {
        fuse_reply_err(req, dir ? ENOTDIR : EISDIR);
        return;
    }
    if (dir) {
        for (fuse_ino_t i = 2; i < next_free; i++)
            if (nodes[i].used && nodes[i].linked && nodes[i].parent == ino) {
                fuse_reply_err(req, ENOTEMPTY);
                return;
            }
        nodes[parent].st.st_nlink--;
    }
    n->linked = 0;
    n->st.st_nlink = 0;
    now(&n->st.st_ctim);
    touch_dir(parent);
    maybe_free(ino);
    fuse_reply_err(req, 0);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    counts[N_UNLINK]++;
    unlink_node(req, parent, name, 0);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    counts[N_RMDIR]++;
    unlink_node(req, parent, name, 1);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    counts[N_OPEN]++;
    struct node *n = get(ino);
    if (!n) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if ((fi->flags & O_TRUNC) && S_ISREG(n->st.st_mode))
        resize(n, 0);
    n->opens++;
    fi->fh = ino;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    counts[N_RELEASE]++;
    (void)fi;
    struct node *n = get(ino);
    if (n) {
        n->opens--;
        maybe_free(ino);
    }
    fuse_reply_err(req, 0);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    counts[N_FLUSH]++;
    (void)ino;
    (void)fi;
    fuse_reply_err(req, ENOSYS);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    counts[N_READ]++;
    (void)fi;
    struct node *n = get(ino);
    struct iovec iov[64];
    int cnt = 0;
    if (!n) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (off >= n->st.st_size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if ((off_t)size > n->st.st_size - off)
        size = n->st.st_size - off;
    while (size && cnt < 64) {
        size_t c = off / CHUNK, o = off % CHUNK, k = CHUNK - o;
        if (k > size)
            k = size;
        iov[cnt].iov_base = n->chunks[c] + o;
        iov[cnt].iov_len = k;
        cnt++;
        off += k;
        size -= k;
    }
    fuse_reply_iov(req, iov, cnt);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                     off_t off, struct fuse_file_info *fi)
{
    counts[N_WRITE]++;
    (void)fi;
    struct node *n = get(ino);
    size_t done = 0;
    if (!n) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (off + (off_t)size > n->st.st_size) {
        int err = resize(n, off + size);
        if (err) {
            fuse_reply_err(req, err);
            return;
        }
    }
    while (done < size) {
        size_t c = (off + done) / CHUNK, o = (off + done) % CHUNK, k = CHUNK - o;
        if (k > size - done)
            k = size - done;
        memcpy(n->chunks[c] + o, buf + done, k);
        done += k;
    }
    now(&n->st.st_mtim);
    n->st.st_ctim = n->st.st_mtim;
    fuse_reply_write(req, size);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    counts[N_OPENDIR]++;
    struct node *n = get(ino);
    if (!n || !S_ISDIR(n->st.st_mode)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    fi->fh = ino;
    fuse_reply_open(req, fi);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    counts[N_READDIR]++;
    (void)fi;
    char *buf = malloc(size);
    size_t used = 0;
    struct stat st;
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    /* offsets: 0 '.', 1 '..', n >= 2 scan the nodes from index n */
    for (off_t pos = off; ; ) {
        const char *name;
        fuse_ino_t child;
        off_t next;
        if (pos == 0) {
            name = ".";
            child = ino;
            next = 1;
        } else if (pos == 1) {
            name = "..";
            child = nodes[ino].parent ? nodes[ino].parent : 1;
            next = 2;
        } else {
            child = (fuse_ino_t)pos;
            while (child < next_free && !(nodes[child].used && nodes[child].linked &&
                                          nodes[child].parent == ino))
                child++;
            if (child >= next_free)
                break;
            name = nodes[child].name;
            next = (off_t)child + 1;
        }
        memset(&st, 0, sizeof(st));
        st.st_ino = child;
        st.st_mode = nodes[child].st.st_mode;
        size_t len = fuse_add_direntry(req, buf + used, size - used, name, &st, next);
        if (len > size - used)
            break;
        used += len;
        pos = next;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    counts[N_RELEASEDIR]++;
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = ll_lookup,
    .forget = ll_forget,
    .forget_multi = ll_forget_multi,
    .getattr = ll_getattr,
    .setattr = ll_setattr,
    .mkdir = ll_mkdir,
    .create = ll_create,
    .unlink = ll_unlink,
    .rmdir = ll_rmdir,
    .open = ll_open,
    .release = ll_release,
    .flush = ll_flush,
    .read = ll_read,
    .write = ll_write,
    .opendir = ll_opendir,
    .readdir = ll_readdir,
    .releasedir = ll_releasedir,
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* fuse_session_loop, polling /dev/fuse for up to spin_us before each read */
static int spin_loop(struct fuse_session *se, long spin_us)
{
    struct fuse_buf buf = {.mem = NULL};
    struct pollfd pfd = {.fd = fuse_session_fd(se), .events = POLLIN};
    int res = 0;
    while (!fuse_session_exited(se)) {
        double limit = now_us() + spin_us;
        while (poll(&pfd, 1, 0) == 0 && now_us() < limit)
            ;
        if (fuse_session_exited(se))    /* SIGTERM while polling */
            break;
        res = fuse_session_receive_buf(se, &buf);
        if (res == -EINTR)
            continue;
        if (res <= 0)
            break;
        fuse_session_process_buf(se, &buf);
    }
    free(buf.mem);
    fuse_session_reset(se);
    return res < 0 ? -res : 0;
}

int main(int argc, char **argv)
{
    char *fargv[] = {argv[0], "-o", "default_permissions,fsname=memfs_ll,subtype=memfs_ll"};
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    struct fuse_session *se;
    struct timespec ts;
    int ret;

    int verbose = 0;
    long spin_us = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            spin_us = atol(argv[++i]);
        else
            argc = 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: memfs_ll MOUNTPOINT [-v] [-s US]\n");
        return 2;
    }
    now(&ts);
    nodes[1].used = 1;
    nodes[1].linked = 1;
    nodes[1].parent = 1;
    nodes[1].st.st_ino = 1;
    nodes[1].st.st_mode = S_IFDIR | 0755;
    nodes[1].st.st_nlink = 2;
    nodes[1].st.st_blksize = 4096;
    nodes[1].st.st_atim = nodes[1].st.st_mtim = nodes[1].st.st_ctim = ts;

    se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
    if (!se)
        return 1;
    if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, argv[1]) != 0) {
        fuse_session_destroy(se);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    ret = spin_us > 0 ? spin_loop(se, spin_us) : fuse_session_loop(se);
    for (int i = 0; i < N_OPS && verbose; i++)
        if (counts[i])
            fprintf(stderr, "memfs_ll: %s %lu\n", op_names[i], counts[i]);
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return ret ? 1 : 0;
}
