/* remap_file_pages(2) as Linux emulates it: a shared file map, a SysV segment
 * (also after IPC_RMID), shared anonymous memory, and the EINVAL cases.  Run
 * natively and under xinim-run; the outputs must match.
 * usage: remap_file DIR  (DIR: a scratch directory) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#define PG 4096

static const char *en(int r) {
    if (r == 0) return "OK";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    default: return "other";
    }
}

static void pages(const char *what, const char *p, int n) {
    printf("%s:", what);
    for (int i = 0; i < n; i++) printf(" %c", p[i * PG]);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char path[4096], buf[PG];
    snprintf(path, sizeof path, "%s/remap_file.dat", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror("open"); return 1; }
    for (int i = 0; i < 4; i++) {
        memset(buf, 'A' + i, PG);
        if (write(fd, buf, PG) != PG) { perror("write"); return 1; }
    }
    char *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) { perror("mmap"); return 1; }
    pages("file map", m, 4);
    printf("remap page 0 -> file page 2: %s\n", en(remap_file_pages(m, PG, 0, 2, 0)));
    printf("remap pages 2-3 -> file pages 0-1, MAP_NONBLOCK: %s\n",
           en(remap_file_pages(m + 2 * PG, 2 * PG, 0, 0, MAP_NONBLOCK)));
    pages("after", m, 4);
    m[0] = 'x';                             /* the store lands in file page 2 */
    m[3 * PG] = 'y';                        /* and this one in file page 1 */
    char c1 = 0, c2 = 0;
    pread(fd, &c1, 1, 2 * PG);
    pread(fd, &c2, 1, 1 * PG);
    printf("file page 2 reads %c, file page 1 reads %c\n", c1, c2);
    char *m2 = mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, fd, 0);
    pages("a second map of the file", m2, 4);
    munmap(m2, 4 * PG);

    /* the EINVAL cases */
    printf("prot != 0: %s\n", en(remap_file_pages(m, PG, PROT_READ, 1, 0)));
    printf("past the mapping: %s\n", en(remap_file_pages(m, 5 * PG, 0, 0, 0)));
    printf("wrapping range: %s\n", en(remap_file_pages(m, (size_t)-PG, 0, 0, 0)));
    char *priv = mmap(NULL, 2 * PG, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("private file map: %s\n", en(remap_file_pages(priv, PG, 0, 1, 0)));
    char *anon = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("private anonymous map: %s\n", en(remap_file_pages(anon, PG, 0, 1, 0)));
    munmap(anon, 2 * PG);
    printf("unmapped address: %s\n", en(remap_file_pages(anon, PG, 0, 1, 0)));
    /* two shared maps of the same file side by side are still two mappings
     * of one file: Linux lets a range span them */
    char *two = mmap(NULL, 4 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mmap(two, 2 * PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    mmap(two + 2 * PG, 2 * PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 2 * PG);
    printf("across two maps of the file: %s\n", en(remap_file_pages(two + PG, 2 * PG, 0, 0, 0)));
    pages("  they read", two, 4);
    mprotect(two + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE);
    printf("across maps of other protection: %s\n",
           en(remap_file_pages(two + PG, 2 * PG, 0, 0, 0)));
    munmap(two, 4 * PG);
    munmap(priv, 2 * PG);
    munmap(m, 4 * PG);
    close(fd);
    unlink(path);

    /* shared anonymous memory */
    char *sa = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sa[0] = 'p';
    sa[PG] = 'q';
    printf("shared anonymous: %s\n", en(remap_file_pages(sa, PG, 0, 1, 0)));
    pages("  reads", sa, 2);
    munmap(sa, 2 * PG);

    /* a SysV segment, before and after IPC_RMID */
    int id = shmget(IPC_PRIVATE, 3 * PG, IPC_CREAT | 0600);
    if (id < 0) { perror("shmget"); return 1; }
    char *s = shmat(id, NULL, 0), *s2 = shmat(id, NULL, 0);
    for (int i = 0; i < 3; i++) s[i * PG] = 'a' + i;
    printf("shm: %s\n", en(remap_file_pages(s, PG, 0, 1, 0)));
    pages("  reads", s, 3);
    shmctl(id, IPC_RMID, NULL);
    printf("shm after IPC_RMID: %s\n", en(remap_file_pages(s, PG, 0, 2, 0)));
    s[0] = 'z';                             /* segment page 2 */
    pages("  reads", s, 3);
    pages("  the other attach reads", s2, 3);
    printf("shm, prot != 0: %s\n", en(remap_file_pages(s, PG, PROT_READ, 0, 0)));
    shmdt(s);
    shmdt(s2);
    /* the only attach of a removed segment: Linux's mmap MAP_FIXED unmaps it
     * first, the segment goes, the remap fails and leaves the range unmapped */
    id = shmget(IPC_PRIVATE, 2 * PG, IPC_CREAT | 0600);
    s = shmat(id, NULL, 0);
    shmctl(id, IPC_RMID, NULL);
    int r = remap_file_pages(s, 2 * PG, 0, 0, 0);
    printf("last attach of a removed segment: %s\n", r ? "failed" : "OK");
    printf("  shmdt after it: %s\n", en(shmdt(s)));
    struct shmid_ds ds;
    printf("  the segment: %s\n", shmctl(id, IPC_STAT, &ds) ? "gone" : "still there");
    printf("done\n");
    return 0;
}
