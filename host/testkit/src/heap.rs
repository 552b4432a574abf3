//! A counting global allocator for benchmarks and fuzz drivers: live heap
//! bytes, their peak, and the number of allocations, so a benchmark can
//! report allocations per transaction and peak memory from inside one
//! process. A binary opts in with
//! `#[global_allocator] static A: executor_testkit::heap::Counting = executor_testkit::heap::Counting(std::alloc::System);`
//! (or around another allocator: the end-to-end benchmark counts around
//! mimalloc, the allocator the `executor-host` binary uses).
//!
//! It forwards to the allocator it wraps unchanged. Counting must not change
//! what it measures: shared counters updated on every allocation put every
//! thread on one cache line (measured: 14% of the end-to-end benchmark's
//! time went to that line bouncing between two cores). So each thread
//! counts in thread-local cells and adds its sums to the shared counters
//! every [`FLUSH_ALLOCATIONS`] allocations or [`FLUSH_BYTES`] bytes: the
//! totals lag by at most that much per thread, which is noise against the
//! millions of allocations and hundreds of megabytes a benchmark reports.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// The counting allocator around `A` (install it with
/// `#[global_allocator]`).
#[derive(Debug)]
pub struct Counting<A = System>(pub A);

/// A thread adds its allocation count to the shared one at least this
/// often.
pub const FLUSH_ALLOCATIONS: usize = 256;
/// A thread adds its change in live bytes to the shared count once it is
/// this large either way.
pub const FLUSH_BYTES: isize = 64 << 10;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's change in live bytes and its allocations, not yet
    /// added to the shared counters. Const-initialized and without a
    /// destructor, so reading it never allocates (it runs inside the
    /// allocator) and works while the thread is being torn down.
    static PENDING: Cell<(isize, usize)> = const { Cell::new((0, 0)) };
}

fn flush(bytes: isize, allocations: usize) {
    ALLOCATIONS.fetch_add(allocations, Ordering::Relaxed);
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if bytes > 0 {
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

fn record(bytes: isize, allocations: usize) {
    let pending = PENDING.try_with(|pending| {
        let (b, n) = pending.get();
        let (b, n) = (b + bytes, n + allocations);
        if b.abs() >= FLUSH_BYTES || n >= FLUSH_ALLOCATIONS {
            pending.set((0, 0));
            flush(b, n);
        } else {
            pending.set((b, n));
        }
    });
    if pending.is_err() {
        flush(bytes, allocations);
    }
}

/// Heap bytes allocated and not yet freed (to within [`FLUSH_BYTES`] per
/// thread).
pub fn live() -> usize {
    usize::try_from(LIVE.load(Ordering::Relaxed)).unwrap_or(0)
}

/// The most live bytes since the last [`reset_peak`].
pub fn peak() -> usize {
    usize::try_from(PEAK.load(Ordering::Relaxed)).unwrap_or(0)
}

/// Starts a new peak from the bytes live now.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Allocations (and reallocations) so far (to within
/// [`FLUSH_ALLOCATIONS`] per thread).
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

fn signed(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

// SAFETY: forwards to the wrapped allocator unchanged, only counting.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(signed(layout.size()), 1);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { self.0.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(-signed(layout.size()), 0);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { self.0.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(signed(new_size) - signed(layout.size()), 1);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}
