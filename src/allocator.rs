//! The global allocator: mimalloc, returning freed memory to the OS after 100 ms instead of its
//! default second.
//!
//! mimalloc instead of glibc's malloc: with many threads allocating per request, glibc spent a
//! quarter of the server's CPU in malloc/free and grew per-thread arenas (see BENCHMARKS.md).
//! mimalloc v3 keeps freed pages for `purge_delay` (1,000 ms) before giving them back, so a
//! burst of bulk requests — each holding a thousand records parsed, sealed and serialized — left
//! its memory resident for a second after it was freed: the import workload peaked at 186–205 MB
//! where 100 ms keeps it at 166–180 MB, with throughput unchanged within the machine's noise
//! (0 ms cost import 15 %; BENCHMARKS.md, "Session 7").

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
}
