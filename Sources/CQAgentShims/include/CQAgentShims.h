#ifndef CQAGENTSHIMS_H
#define CQAGENTSHIMS_H

/// Creates an anonymous in-memory file (Linux memfd_create, close-on-exec) holding `length`
/// bytes of `bytes`, positioned at offset 0. Returns the descriptor, or -1 with errno set.
/// Used to hand a task's param to a child on stdin without creating a file on disk.
int qagent_memfd_with_bytes(const char *name, const void *bytes, long length);

/// Deletes a toml++ node (a `toml::table` TOMLKit parsed) through its virtual deleting
/// destructor, which is what C++ `delete node` does: `toml::node` declares its destructor as
/// its first virtual function, so under the Itanium C++ ABI (Linux, macOS) the deleting
/// destructor is the second entry of its vtable. TOMLKit 0.6.0 offers no function that frees
/// a parsed document (see `TOMLDocument` in QScheduleAgent).
void qagent_toml_node_delete(void *node);

#endif
