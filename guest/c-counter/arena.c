// The C guests' allocator: a bump allocator, as the Rust SDK's
// `StepArena`. Every step runs in a fresh instance, so memory is never
// reused, and wasi-libc's general-purpose malloc (dlmalloc) would only add
// its code (11 KB of the counter's module) and its bookkeeping (a third of
// its gas) to every call.
//
// It replaces wasi-libc's `malloc`, `realloc` and `free`, which the
// bindings call too (`cabi_realloc`, `cabi_post_*`). It is a file of its
// own on purpose: the compiler knows what `malloc` means and optimizes its
// callers accordingly, which is sound for callers in other files (this
// allocator keeps those promises) but not for code that sees its insides,
// so nothing here calls these three by name.
//
// Each block has a 16-byte header holding its size and is 16-byte aligned;
// growing the last block grows it in place. Running out of memory (the
// sandbox's limit) returns NULL.

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ARENA_ALIGN 16
#define WASM_PAGE 65536

extern unsigned char __heap_base;  // from wasm-ld: where the data and the stack end
static uintptr_t arena_next = (uintptr_t)&__heap_base;

// Moves the end of the arena to `end`, growing memory if need be.
static bool arena_extend_to(uintptr_t end) {
  size_t have = __builtin_wasm_memory_size(0) * WASM_PAGE;
  if (end > have) {
    size_t pages = (end - have + WASM_PAGE - 1) / WASM_PAGE;
    if (__builtin_wasm_memory_grow(0, pages) == SIZE_MAX) return false;
  }
  arena_next = end;
  return true;
}

static void *arena_alloc(size_t size) {
  uintptr_t block = (arena_next + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
  if (block < arena_next || size > UINTPTR_MAX - ARENA_ALIGN - block) return NULL;
  if (!arena_extend_to(block + ARENA_ALIGN + size)) return NULL;
  *(size_t *)block = size;
  return (void *)(block + ARENA_ALIGN);
}

void *malloc(size_t size) { return arena_alloc(size); }

void free(void *ptr) { (void)ptr; }

void *realloc(void *ptr, size_t size) {
  if (ptr == NULL) return arena_alloc(size);
  size_t *header = (size_t *)((uintptr_t)ptr - ARENA_ALIGN);
  size_t old = *header;
  if (size <= old) return ptr;
  if ((uintptr_t)ptr + old == arena_next && size <= UINTPTR_MAX - (uintptr_t)ptr) {
    if (!arena_extend_to((uintptr_t)ptr + size)) return NULL;
    *header = size;
    return ptr;
  }
  void *moved = arena_alloc(size);
  if (moved != NULL) memcpy(moved, ptr, old);
  return moved;
}
