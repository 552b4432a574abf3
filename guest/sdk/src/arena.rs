//! The step arena: the global allocator [`export_executor!`](crate::export_executor)
//! installs in wasm guests.
//!
//! The host gives every step a fresh instance and throws it away after, so
//! a guest never needs memory back: a bump allocator that starts at the
//! heap base, frees only the latest allocation, and grows linear memory
//! only when it must, is both the fastest allocator and the right one. It
//! also never calls `memory.grow` for a step that fits in the initial
//! memory, which is most of what a fresh instance costs (page faults and
//! protection changes in the host).
//!
//! A guest that allocates and frees a great deal within one step (an
//! interpreter, say) should bring its own allocator instead: invoke
//! `export_executor!(MyFunction, own_allocator)`.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

const PAGE: usize = 65536;

/// A bump allocator over the guest's linear memory (wasm32 only).
#[derive(Debug)]
pub struct StepArena {
    next: Cell<usize>,
}

// SAFETY: wasm guests are single-threaded (the host has threads disabled),
// so the cell is never shared between threads.
#[allow(unsafe_code)]
unsafe impl Sync for StepArena {}

impl StepArena {
    pub const fn new() -> Self {
        Self { next: Cell::new(0) }
    }
}

impl Default for StepArena {
    fn default() -> Self {
        Self::new()
    }
}

#[allow(unsafe_code)]
unsafe extern "C" {
    /// Set by the linker: where the heap starts, after the stack and data.
    static __heap_base: u8;
}

impl StepArena {
    fn bump(&self, align: usize, size: usize) -> *mut u8 {
        let mut next = self.next.get();
        if next == 0 {
            // Taking the address of an extern static is safe; it is never read.
            next = core::ptr::addr_of!(__heap_base) as usize;
        }
        let Some(start) = next.checked_add(align - 1).map(|n| n & !(align - 1)) else {
            return core::ptr::null_mut();
        };
        let Some(end) = start.checked_add(size) else { return core::ptr::null_mut() };
        if !ensure(end) {
            return core::ptr::null_mut();
        }
        self.next.set(end);
        start as *mut u8
    }
}

/// Grows linear memory so that addresses below `end` are valid.
fn ensure(end: usize) -> bool {
    let have = core::arch::wasm32::memory_size(0) * PAGE;
    if end <= have {
        return true;
    }
    let pages = (end - have).div_ceil(PAGE);
    core::arch::wasm32::memory_grow(0, pages) != usize::MAX
}

// SAFETY: `bump` returns blocks aligned as asked that no other live
// allocation overlaps (the bump pointer only moves back over the block
// just freed), inside linear memory it has grown to cover them.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for StepArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.bump(layout.align(), layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        if start + layout.size() == self.next.get() {
            // The latest block: grow or shrink it where it is.
            let Some(end) = start.checked_add(new_size) else { return core::ptr::null_mut() };
            if !ensure(end) {
                return core::ptr::null_mut();
            }
            self.next.set(end);
            return ptr;
        }
        let new = self.bump(layout.align(), new_size);
        if !new.is_null() {
            // SAFETY: both blocks are valid for the copied length and
            // distinct (the new one lies past the bump pointer).
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}
