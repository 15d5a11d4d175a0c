//! Peak heap memory: a counting wrapper around the system allocator.
//!
//! The library does not install it; a binary opts in with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: slicedscore::bench::memory::CountingAllocator =
//!     slicedscore::bench::memory::CountingAllocator;
//! ```
//!
//! Then [`reset_peak`] starts a measurement (returning the bytes in use
//! then, the baseline) and [`peak_bytes`] gives the most bytes in use at
//! once since. Where the allocator is not installed (a test binary, another
//! program linking the library) [`is_installed`] is false and callers must
//! not report the counters, which stay zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak.
pub struct CountingAllocator;

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if now > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    CURRENT.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the same arguments; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            let old = layout.size();
            if new_size >= old {
                grew(new_size - old);
            } else {
                shrank(old - new_size);
            }
        }
        p
    }
}

/// Whether [`CountingAllocator`] is this program's global allocator (it has
/// served at least one allocation).
pub fn is_installed() -> bool {
    ALLOCATIONS.load(Ordering::Relaxed) > 0
}

/// Heap bytes in use now (0 when not installed).
pub fn current_bytes() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Starts a peak measurement: the peak becomes the bytes in use now, which
/// are returned (the baseline to subtract from [`peak_bytes`]).
pub fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    // An allocation between the two lines may have raised CURRENT; keep PEAK ≥ CURRENT.
    PEAK.fetch_max(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
    now
}

/// The most heap bytes in use at once since the last [`reset_peak`] (0 when
/// not installed).
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Number of allocations served so far (0 when not installed).
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}
