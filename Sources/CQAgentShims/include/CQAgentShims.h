#ifndef CQAGENTSHIMS_H
#define CQAGENTSHIMS_H

/// Creates an anonymous in-memory file (Linux memfd_create, close-on-exec) holding `length`
/// bytes of `bytes`, positioned at offset 0. Returns the descriptor, or -1 with errno set.
/// Used to hand a task's param to a child on stdin without creating a file on disk.
int qagent_memfd_with_bytes(const char *name, const void *bytes, long length);

#endif
