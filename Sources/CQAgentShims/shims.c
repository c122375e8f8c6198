#define _GNU_SOURCE
#include "CQAgentShims.h"
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int qagent_memfd_with_bytes(const char *name, const void *bytes, long length) {
#ifdef SYS_memfd_create
    int fd = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
#else
    int fd = -1;
    errno = ENOSYS;
#endif
    if (fd < 0) return -1;
    const char *cursor = bytes;
    long left = length;
    while (left > 0) {
        ssize_t written = write(fd, cursor, (size_t)left);
        if (written < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        cursor += written;
        left -= written;
    }
    if (lseek(fd, 0, SEEK_SET) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

void qagent_toml_node_delete(void *node) {
    if (node == NULL) return;
    typedef void (*deleting_destructor)(void *);
    deleting_destructor *vtable = *(deleting_destructor **)node;
    vtable[1](node);
}
