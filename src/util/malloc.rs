//! The allocator's policy for a one-shot run (`scan`): keep freed memory in the process
//! instead of handing it back to the kernel and faulting it in again.
//!
//! glibc serves blocks of 128 KiB and up (a threshold it raises as such blocks are freed) with
//! their own `mmap`, and returns the top of the heap past 128 KiB free: a scan that grows its
//! tables, buffers and result faults the same pages in more than once. Measured with
//! [`SCAN_MMAP_THRESHOLD`] and [`SCAN_TRIM_THRESHOLD`] (issue #11, docs/performance.md, ninth
//! pass): a 65 536-client flood's minor faults 154 082 → 123 067, its clean twin's 41 505 →
//! 31 486.
//! A long-running server (`serve`) keeps glibc's defaults: there, giving memory back matters.

/// Blocks below this come from the heap: glibc's largest (`mallopt` refuses more than
/// `HEAP_MAX_SIZE / 2`, 32 MiB on 64-bit).
pub const SCAN_MMAP_THRESHOLD: usize = 32 << 20;
/// This much free memory at the top of the heap is kept rather than returned.
pub const SCAN_TRIM_THRESHOLD: usize = 64 << 20;

/// Applies the one-shot policy to this process (glibc only; elsewhere nothing). Returns
/// whether the allocator took both settings.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let int = |n: usize| libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only sets allocator parameters (no pointers); glibc documents both
        // options as safe to change at any time, before or after allocations.
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, int(SCAN_MMAP_THRESHOLD)) };
        // SAFETY: as above.
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, int(SCAN_TRIM_THRESHOLD)) };
        mmap == 1 && trim == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_takes_the_policy() {
        // mallopt returns 1 on success; M_MMAP_THRESHOLD above HEAP_MAX_SIZE / 2 (32 MiB on
        // 64-bit) is refused, so the constants must stay within what glibc accepts.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(super::keep_freed_memory(), "glibc refused the thresholds");
    }
}
