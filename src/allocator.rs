//! The global allocator: mimalloc, returning freed memory to the OS after 100 ms instead of its
//! default second, and not backed by transparent huge pages.
//!
//! mimalloc instead of glibc's malloc: with many threads allocating per request, glibc spent a
//! quarter of the server's CPU in malloc/free and grew per-thread arenas (see BENCHMARKS.md).
//! mimalloc v3 keeps freed pages for `purge_delay` (1,000 ms) before giving them back, so a
//! burst of bulk requests — each holding a thousand records parsed, sealed and serialized — left
//! its memory resident for a second after it was freed: the import workload peaked at 186–205 MB
//! where 100 ms keeps it at 166–180 MB, with throughput unchanged within the machine's noise
//! (0 ms cost import 15 %; BENCHMARKS.md, "Session 7").
//!
//! Built without transparent huge pages (libmimalloc-sys's `no_thp` feature, Cargo.toml): by
//! default mimalloc `madvise`s its 1 GiB arena `MADV_HUGEPAGE`, so the kernel backs it with
//! 2 MiB pages. A huge page is resident whole however little of it mimalloc uses, and a
//! 64 KiB purge splits it: on a 1 M tenant 60–70 MB of the server's RSS was huge pages, and
//! without them the peak over every workload fell from 156–164 MB to about 118 MB, throughput
//! unchanged within the noise (BENCHMARKS.md, "Session 8"). On a host whose THP setting is
//! `always` rather than `madvise` the kernel may still use them; there
//! `MIMALLOC_ALLOW_THP=0` in the environment turns them off for the process.

use std::ffi::c_long;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's option enum (libmimalloc-sys names no constant
/// for it); the test below checks the index against the option's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const PURGE_DELAY_MS: c_long = 100;

/// Sets the purge delay, unless the operator chose one through mimalloc's own environment
/// variable (read when the process loads). Call once, first thing in `main`.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    set_purge_delay(PURGE_DELAY_MS);
}

#[allow(unsafe_code)]
fn set_purge_delay(ms: c_long) {
    // SAFETY: `mi_option_set` stores a value in mimalloc's option table and takes no pointers;
    // the index is in range (checked by the test) and any value is valid for this option.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) }
}

#[cfg(test)]
#[allow(unsafe_code)]
fn purge_delay() -> c_long {
    // SAFETY: as above; `mi_option_get` only reads the option table.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index names the purge delay: its default is v3's 1,000 ms (no other option near it
    /// has that default), and `tune` changes it to 100 ms. A mimalloc upgrade that renumbers the
    /// enum fails here instead of silently tuning some other option.
    #[test]
    fn tune_sets_mimallocs_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(purge_delay(), 1000);
        tune();
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
    }

    /// Memory from the allocator is not backed by transparent huge pages. Only meaningful
    /// where the kernel gives them to regions that ask (`madvise` mode, the common default):
    /// there, a mimalloc built with THP asks for its whole arena, and touching 64 MiB of
    /// allocations shows up as `AnonHugePages`.
    #[cfg(target_os = "linux")]
    #[test]
    fn allocations_are_not_on_huge_pages() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if !mode.contains("[madvise]") {
            eprintln!("skipped: transparent huge pages are not in madvise mode here");
            return;
        }
        // 2 MiB blocks touched through: the shape huge pages would back.
        let blocks: Vec<Vec<u8>> = (0..32).map(|i| vec![i as u8 | 1; 2 << 20]).collect();
        let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
        let huge_kib: u64 = rollup
            .lines()
            .find_map(|l| l.strip_prefix("AnonHugePages:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(u64::MAX);
        assert_eq!(blocks.iter().map(Vec::len).sum::<usize>(), 64 << 20);
        assert_eq!(huge_kib, 0, "AnonHugePages in {rollup}");
    }
}
