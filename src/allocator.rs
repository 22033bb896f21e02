//! The `portero` binary's global allocator: mimalloc, asked by the shortest
//! way for what Rust asks of it.
//!
//! A request allocates a few blocks and frees them on the same thread:
//! mimalloc's per-thread free lists serve that in about a third of glibc's
//! instructions. The `mimalloc` crate's own `GlobalAlloc` passes every
//! request through `mi_malloc_aligned`, three calls deep before the free
//! list, and sends a block over 1 KiB (hyper's 8 KiB read buffer, once a
//! request) through the aligned allocation's generic path. Almost every Rust
//! allocation asks for no more than mimalloc gives anyway, so those go
//! straight to `mi_malloc` (BENCHMARKS.md, "The hot path and its budget").

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

pub struct MiMalloc;

/// What every `mi_malloc` block is aligned to (a machine word); mimalloc
/// gives 16 bytes from 16 bytes up, but a word is all this relies on.
const GUARANTEED: usize = std::mem::size_of::<usize>();

/// A block of `layout` needs no more alignment than any block has.
#[inline]
fn plain(align: usize, size: usize) -> bool {
    align <= GUARANTEED && align <= size
}

// SAFETY: each function hands the layout's size and alignment to mimalloc,
// which returns null or a block of that size at that alignment (`plain`
// asks `mi_malloc` only for what its every block satisfies), and frees or
// resizes only blocks it gave.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            unsafe { mi::mi_malloc(layout.size()) as *mut u8 }
        } else {
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            unsafe { mi::mi_zalloc(layout.size()) as *mut u8 }
        } else {
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(layout.align(), new_size) {
            unsafe { mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8 }
        } else {
            unsafe {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked_for_and_keep_their_bytes() {
        let a = MiMalloc;
        for (size, align) in [
            (1, 1),
            (3, 2),
            (8, 8),
            (24, 8),
            (24, 16),
            (100, 64),
            (9000, 8),
            (40, 4096),
        ] {
            let layout = Layout::from_size_align(size, align).unwrap();
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "{size} bytes at {align}");
                assert!((0..size).all(|i| *p.add(i) == 0));
                p.write_bytes(0xA5, size);
                let grown = a.realloc(p, layout, size * 3);
                assert_eq!(grown as usize % align, 0, "{size} bytes at {align}, grown");
                assert!((0..size).all(|i| *grown.add(i) == 0xA5));
                a.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());
            }
        }
    }
}
