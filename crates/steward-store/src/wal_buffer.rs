//! A SQLite VFS for the single writer that hands the WAL to the kernel in large pieces.
//!
//! SQLite writes every WAL frame as two `pwrite` calls, its 24-byte header and then its page,
//! so a commit of 1,800 frames (an import batch) is 3,600 system calls. On the two-core VMs
//! we measure on, a call costs more than copying the 4 KiB it carries. This VFS wraps the
//! platform's default one and, for WAL files only, gathers consecutive writes in a 128 KiB
//! buffer that it writes with one call (31 frames).
//!
//! Why this is safe:
//! - Buffered bytes reach the file before any `xSync`, `xRead`, `xTruncate`, `xFileSize` or
//!   `xFileControl` of the WAL, and before any write that does not continue the buffer, so
//!   SQLite never reads or syncs a WAL that lacks what it wrote.
//! - They also reach it before the database handle's shared-memory barrier, which SQLite calls
//!   between writing the two copies of the wal-index header that publish a commit, and before
//!   the WAL's write lock is released. So no reader sees a frame that is not in the file, and
//!   no bytes are written once another connection may write the WAL: a transaction that spilled
//!   frames and rolled back leaves them in the buffer, and written after the lock is gone they
//!   would land on another writer's commit.
//! - In `synchronous = FULL` every commit ends with a sync of the WAL before it is published, so
//!   a failed write fails the committing transaction. A failure found at a barrier or a read is
//!   kept and fails the next sync, so a transaction whose frames did not all reach the file can
//!   not commit. Hence only the writer's connection uses this VFS, and only in `FULL`
//!   ([`crate::pool::Manager::connect_writer`]).
//! - Buffering needs the wal-index in shared memory (the database handle has mapped it) and a
//!   database file that promises powersafe overwrite (otherwise SQLite pads a commit's last
//!   frame and splits it around the sync). Without either, and for every other file, writes go
//!   straight through.
//!
//! What is left in `unsafe` here is the C calling convention of SQLite's VFS interface: each
//! method forwards to the wrapped VFS's method of the same name.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// The name the writer's connection asks for (`?vfs=` in its URI).
pub const VFS_NAME: &CStr = c"steward-wal-buffer";

/// Bytes gathered before a write is issued: 31 frames of a 4 KiB page. No more, because the
/// unix VFS takes at most 128 KiB - 1 per write: it masks a write's length to 17 bits, since
/// SQLite itself never writes more than one 64 KiB page at a time.
const BUFFER_BYTES: usize = 0x1ffff;

/// Registers the VFS once per process (not as the default). An error is SQLite's result
/// code; the caller then opens the writer on the default VFS.
pub fn register() -> Result<(), c_int> {
    static REGISTERED: OnceLock<Result<(), c_int>> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // SAFETY: `sqlite3_vfs_find` initializes SQLite and returns the default VFS, which
        // lives for the whole process. The VFS we register is leaked on purpose: SQLite keeps
        // a pointer to it for the rest of the process.
        unsafe {
            let inner = ffi::sqlite3_vfs_find(ptr::null());
            if inner.is_null() {
                return Err(ffi::SQLITE_ERROR);
            }
            let vfs = Box::new(ffi::sqlite3_vfs {
                iVersion: (*inner).iVersion.min(3),
                szOsFile: c_int::try_from(INNER_OFFSET)
                    .map_err(|_| ffi::SQLITE_ERROR)?
                    .saturating_add((*inner).szOsFile),
                mxPathname: (*inner).mxPathname,
                pNext: ptr::null_mut(),
                zName: VFS_NAME.as_ptr(),
                pAppData: inner.cast(),
                xOpen: Some(x_open),
                xDelete: Some(x_delete),
                xAccess: Some(x_access),
                xFullPathname: Some(x_full_pathname),
                xDlOpen: Some(x_dl_open),
                xDlError: Some(x_dl_error),
                xDlSym: Some(x_dl_sym),
                xDlClose: Some(x_dl_close),
                xRandomness: Some(x_randomness),
                xSleep: Some(x_sleep),
                xCurrentTime: Some(x_current_time),
                xGetLastError: Some(x_get_last_error),
                xCurrentTimeInt64: Some(x_current_time_int64),
                xSetSystemCall: Some(x_set_system_call),
                xGetSystemCall: Some(x_get_system_call),
                xNextSystemCall: Some(x_next_system_call),
            });
            match ffi::sqlite3_vfs_register(Box::into_raw(vfs), 0) {
                ffi::SQLITE_OK => Ok(()),
                rc => Err(rc),
            }
        }
    })
}

/// A URI that opens the database at `path` through this VFS. SQLite reads `%HH` escapes in
/// a URI's path, and `?` and `#` end it, so those three are escaped. An absolute path gets an
/// empty authority (`file:///…`), so one that starts with `//` is not read as a host.
pub fn uri(path: &str) -> String {
    let mut uri = String::with_capacity(path.len() + 40);
    uri.push_str(if path.starts_with('/') {
        "file://"
    } else {
        "file:"
    });
    for c in path.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3F"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?vfs=");
    uri.push_str(&VFS_NAME.to_string_lossy());
    uri
}

/// Whether a database given by `path` can be opened through [`uri`]: not when it already is a
/// URI (SQLite reads `file:` names as URIs for every connection, so the writer must open the
/// same name as the readers) or an in-memory or temporary database, which has no WAL.
pub fn supports(path: &str) -> bool {
    !(path.is_empty() || path == ":memory:" || path.starts_with("file:"))
}

/// Our part of a file handle. SQLite allocates `szOsFile` bytes; the wrapped VFS's handle
/// follows ours at [`INNER_OFFSET`].
#[repr(C)]
struct BufferedFile {
    /// Must come first: SQLite sees a `*mut sqlite3_file` and reads `pMethods` from it.
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// Set for a WAL file that may be buffered.
    wal: Option<WalBuffer>,
    /// A buffered WAL's database handle, and a database handle's buffered WAL (null when there
    /// is none): the database handle's shared-memory calls say when the WAL's buffer must go
    /// out.
    link: *mut BufferedFile,
    /// On a database handle: the wal-index is in shared memory, so commits are published through
    /// its barrier and the WAL's write lock is one of its locks.
    shm_mapped: bool,
}

// SQLite's allocator aligns a file handle to 8 bytes.
const _: () = assert!(std::mem::align_of::<BufferedFile>() <= 8);

const INNER_OFFSET: usize = std::mem::size_of::<BufferedFile>().next_multiple_of(16);

/// Consecutive writes not yet issued: `bytes` belong at file offset `start`.
#[derive(Default)]
struct WalBuffer {
    bytes: Vec<u8>,
    start: i64,
    /// A write-out failed where SQLite could not be told (a barrier) or might only roll back a
    /// statement (a read): the next sync fails, so the transaction cannot commit. Cleared when
    /// the write lock is released.
    failed: bool,
}

impl WalBuffer {
    fn end(&self) -> i64 {
        self.start
            .saturating_add(i64::try_from(self.bytes.len()).unwrap_or(i64::MAX))
    }

    /// Issues the buffered bytes as one write. The buffer is emptied either way; a failure is
    /// kept in `failed` and reported as a write error.
    unsafe fn flush(&mut self, inner: *mut ffi::sqlite3_file) -> c_int {
        if self.bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        #[cfg(test)]
        tests::count_issued_write();
        let rc = match (
            c_int::try_from(self.bytes.len()),
            (*(*inner).pMethods).xWrite,
        ) {
            (Ok(len), Some(write)) => write(inner, self.bytes.as_ptr().cast(), len, self.start),
            _ => ffi::SQLITE_IOERR_WRITE,
        };
        self.bytes.clear();
        if rc == ffi::SQLITE_OK {
            rc
        } else {
            self.failed = true;
            ffi::SQLITE_IOERR_WRITE
        }
    }
}

static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

unsafe fn inner_vfs(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    (*vfs).pAppData.cast()
}

unsafe fn file<'a>(f: *mut ffi::sqlite3_file) -> &'a mut BufferedFile {
    &mut *f.cast::<BufferedFile>()
}

/// The wrapped handle's methods. Never null: SQLite calls ours only after a successful open.
unsafe fn methods<'a>(inner: *mut ffi::sqlite3_file) -> &'a ffi::sqlite3_io_methods {
    &*(*inner).pMethods
}

/// Writes out a WAL file's buffer before an operation that must see the file as SQLite wrote
/// it.
unsafe fn flush(f: &mut BufferedFile) -> c_int {
    match f.wal.as_mut() {
        Some(wal) => wal.flush(f.inner),
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    handle: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let inner_vfs = inner_vfs(vfs);
    let f = handle.cast::<BufferedFile>();
    let inner = handle
        .cast::<u8>()
        .add(INNER_OFFSET)
        .cast::<ffi::sqlite3_file>();
    ptr::write(
        f,
        BufferedFile {
            base: ffi::sqlite3_file {
                pMethods: ptr::null(),
            },
            inner,
            wal: None,
            link: ptr::null_mut(),
            shm_mapped: false,
        },
    );
    (*inner).pMethods = ptr::null();
    let Some(open) = (*inner_vfs).xOpen else {
        return ffi::SQLITE_CANTOPEN;
    };
    let rc = open(inner_vfs, name, inner, flags, out_flags);
    // SQLite closes a handle whose `pMethods` is set even when the open failed, so ours is set
    // exactly when the wrapped one is.
    if (*inner).pMethods.is_null() {
        return rc;
    }
    (*f).base.pMethods = &IO_METHODS;
    if rc == ffi::SQLITE_OK && flags & ffi::SQLITE_OPEN_WAL != 0 && !name.is_null() {
        // The WAL is opened through the VFS its database was opened with, so that handle is
        // one of ours; checked all the same.
        let db = ffi::sqlite3_database_file_object(name).cast::<BufferedFile>();
        if !db.is_null() && ptr::eq((*db).base.pMethods, &IO_METHODS) {
            // SQLite decides from the database handle whether to pad a commit.
            let db_inner = (*db).inner;
            let characteristics = methods(db_inner)
                .xDeviceCharacteristics
                .map_or(0, |dc| dc(db_inner));
            if characteristics & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0 {
                (*f).wal = Some(WalBuffer::default());
                (*f).link = db;
                (*db).link = f;
            }
        }
    }
    rc
}

/// The buffered WAL linked to a database handle, if any.
unsafe fn linked_wal<'a>(db: &BufferedFile) -> Option<&'a mut BufferedFile> {
    if db.link.is_null() {
        None
    } else {
        Some(&mut *db.link)
    }
}

unsafe extern "C" fn x_close(handle: *mut ffi::sqlite3_file) -> c_int {
    let f = file(handle);
    // A WAL is closed without its write lock, so whatever is still buffered belongs to no
    // commit (commits went out at their sync or barrier) and must not be written now, when
    // another connection may own those offsets. Dropping the buffer frees it; `None` needs no
    // drop when SQLite frees the handle's memory.
    f.wal = None;
    if !f.link.is_null() {
        (*f.link).link = ptr::null_mut();
        f.link = ptr::null_mut();
    }
    methods(f.inner)
        .xClose
        .map_or(ffi::SQLITE_OK, |c| c(f.inner))
}

unsafe extern "C" fn x_read(
    handle: *mut ffi::sqlite3_file,
    out: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let f = file(handle);
    let rc = flush(f);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    match methods(f.inner).xRead {
        Some(read) => read(f.inner, out, amount, offset),
        None => ffi::SQLITE_IOERR_READ,
    }
}

unsafe extern "C" fn x_write(
    handle: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let f = file(handle);
    let inner = f.inner;
    #[cfg(test)]
    tests::count_wal_write(f.wal.is_some());
    let write_through = |inner: *mut ffi::sqlite3_file| match methods(inner).xWrite {
        Some(write) => write(inner, data, amount, offset),
        None => ffi::SQLITE_IOERR_WRITE,
    };
    let shared_index = !f.link.is_null() && (*f.link).shm_mapped;
    let Some(wal) = f.wal.as_mut().filter(|_| shared_index) else {
        return write_through(inner);
    };
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let continues = wal.bytes.is_empty() || offset == wal.end();
    if !continues || wal.bytes.len() + len > BUFFER_BYTES {
        let rc = wal.flush(inner);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if len > BUFFER_BYTES {
        #[cfg(test)]
        tests::count_issued_write();
        return write_through(inner);
    }
    if wal.bytes.is_empty() {
        wal.start = offset;
        wal.bytes.reserve(BUFFER_BYTES);
    }
    wal.bytes
        .extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len));
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_truncate(handle: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    let f = file(handle);
    let rc = flush(f);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    methods(f.inner)
        .xTruncate
        .map_or(ffi::SQLITE_IOERR_TRUNCATE, |t| t(f.inner, size))
}

unsafe extern "C" fn x_sync(handle: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let f = file(handle);
    let rc = flush(f);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    if f.wal.as_ref().is_some_and(|w| w.failed) {
        return ffi::SQLITE_IOERR_WRITE;
    }
    methods(f.inner)
        .xSync
        .map_or(ffi::SQLITE_IOERR_FSYNC, |s| s(f.inner, flags))
}

unsafe extern "C" fn x_file_size(
    handle: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    let f = file(handle);
    let rc = flush(f);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    methods(f.inner)
        .xFileSize
        .map_or(ffi::SQLITE_IOERR_FSTAT, |s| s(f.inner, size))
}

unsafe extern "C" fn x_lock(handle: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let f = file(handle);
    methods(f.inner)
        .xLock
        .map_or(ffi::SQLITE_IOERR_LOCK, |l| l(f.inner, level))
}

unsafe extern "C" fn x_unlock(handle: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let f = file(handle);
    methods(f.inner)
        .xUnlock
        .map_or(ffi::SQLITE_IOERR_UNLOCK, |u| u(f.inner, level))
}

unsafe extern "C" fn x_check_reserved_lock(
    handle: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    let f = file(handle);
    methods(f.inner)
        .xCheckReservedLock
        .map_or(ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, |c| c(f.inner, out))
}

unsafe extern "C" fn x_file_control(
    handle: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    let f = file(handle);
    let rc = flush(f);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    methods(f.inner)
        .xFileControl
        .map_or(ffi::SQLITE_NOTFOUND, |c| c(f.inner, op, arg))
}

unsafe extern "C" fn x_sector_size(handle: *mut ffi::sqlite3_file) -> c_int {
    let f = file(handle);
    methods(f.inner).xSectorSize.map_or(0, |s| s(f.inner))
}

unsafe extern "C" fn x_device_characteristics(handle: *mut ffi::sqlite3_file) -> c_int {
    let f = file(handle);
    methods(f.inner)
        .xDeviceCharacteristics
        .map_or(0, |d| d(f.inner))
}

/// The shared-memory and memory-map methods exist from version 2 and 3 of the wrapped
/// methods; SQLite checks for them on our table, so ours answer as a missing one would.
unsafe fn version(inner: *mut ffi::sqlite3_file) -> c_int {
    methods(inner).iVersion
}

unsafe extern "C" fn x_shm_map(
    handle: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let f = file(handle);
    let rc = match methods(f.inner).xShmMap {
        Some(m) if version(f.inner) >= 2 => m(f.inner, region, size, extend, out),
        _ => ffi::SQLITE_IOERR_SHMMAP,
    };
    if rc == ffi::SQLITE_OK && !(*out).is_null() {
        f.shm_mapped = true;
    }
    rc
}

/// SQLite's lock on the WAL's right to append (`WAL_WRITE_LOCK`): the first shared-memory
/// lock.
const WAL_WRITE_LOCK: c_int = 0;

unsafe extern "C" fn x_shm_lock(
    handle: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let f = file(handle);
    let releases_write_lock = flags & ffi::SQLITE_SHM_UNLOCK != 0
        && offset <= WAL_WRITE_LOCK
        && offset.saturating_add(n) > WAL_WRITE_LOCK;
    if releases_write_lock {
        if let Some(wal) = linked_wal(f) {
            // Still ours to write: a rolled-back transaction's frames, past the last commit,
            // harmless there. After the unlock they could overwrite another writer's frames.
            if let Some(buffer) = wal.wal.as_mut() {
                let _ = buffer.flush(wal.inner);
                buffer.failed = false;
            }
        }
    }
    match methods(f.inner).xShmLock {
        Some(l) if version(f.inner) >= 2 => l(f.inner, offset, n, flags),
        _ => ffi::SQLITE_IOERR_SHMLOCK,
    }
}

unsafe extern "C" fn x_shm_barrier(handle: *mut ffi::sqlite3_file) {
    let f = file(handle);
    // SQLite publishes a commit by writing the wal-index header twice around this barrier:
    // its frames must be in the file first. In FULL the commit's sync already wrote them.
    if let Some(wal) = linked_wal(f) {
        if let Some(buffer) = wal.wal.as_mut() {
            if buffer.flush(wal.inner) != ffi::SQLITE_OK {
                tracing::error!("writing the WAL before publishing a commit failed");
            }
        }
    }
    if let Some(b) = methods(f.inner)
        .xShmBarrier
        .filter(|_| version(f.inner) >= 2)
    {
        b(f.inner);
    }
}

unsafe extern "C" fn x_shm_unmap(handle: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let f = file(handle);
    f.shm_mapped = false;
    match methods(f.inner).xShmUnmap {
        Some(u) if version(f.inner) >= 2 => u(f.inner, delete),
        _ => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn x_fetch(
    handle: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let f = file(handle);
    match methods(f.inner).xFetch {
        Some(fetch) if version(f.inner) >= 3 => fetch(f.inner, offset, amount, out),
        _ => {
            // "No mapping": SQLite reads the page instead.
            *out = ptr::null_mut();
            ffi::SQLITE_OK
        }
    }
}

unsafe extern "C" fn x_unfetch(
    handle: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    let f = file(handle);
    match methods(f.inner).xUnfetch {
        Some(unfetch) if version(f.inner) >= 3 => unfetch(f.inner, offset, page),
        _ => ffi::SQLITE_OK,
    }
}

// The VFS-level methods: each calls the wrapped VFS's.

unsafe extern "C" fn x_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync: c_int,
) -> c_int {
    let inner = inner_vfs(vfs);
    (*inner)
        .xDelete
        .map_or(ffi::SQLITE_IOERR_DELETE, |d| d(inner, name, sync))
}

unsafe extern "C" fn x_access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    let inner = inner_vfs(vfs);
    (*inner)
        .xAccess
        .map_or(ffi::SQLITE_IOERR_ACCESS, |a| a(inner, name, flags, out))
}

unsafe extern "C" fn x_full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    let inner = inner_vfs(vfs);
    (*inner)
        .xFullPathname
        .map_or(ffi::SQLITE_CANTOPEN, |p| p(inner, name, n, out))
}

unsafe extern "C" fn x_dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    let inner = inner_vfs(vfs);
    (*inner).xDlOpen.map_or(ptr::null_mut(), |o| o(inner, name))
}

unsafe extern "C" fn x_dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    let inner = inner_vfs(vfs);
    if let Some(e) = (*inner).xDlError {
        e(inner, n, out);
    }
}

type DlSymbol = unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char);

unsafe extern "C" fn x_dl_sym(
    vfs: *mut ffi::sqlite3_vfs,
    library: *mut c_void,
    symbol: *const c_char,
) -> Option<DlSymbol> {
    let inner = inner_vfs(vfs);
    (*inner).xDlSym.and_then(|s| s(inner, library, symbol))
}

unsafe extern "C" fn x_dl_close(vfs: *mut ffi::sqlite3_vfs, library: *mut c_void) {
    let inner = inner_vfs(vfs);
    if let Some(c) = (*inner).xDlClose {
        c(inner, library);
    }
}

unsafe extern "C" fn x_randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    let inner = inner_vfs(vfs);
    (*inner).xRandomness.map_or(0, |r| r(inner, n, out))
}

unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    let inner = inner_vfs(vfs);
    (*inner).xSleep.map_or(0, |s| s(inner, micros))
}

unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    let inner = inner_vfs(vfs);
    (*inner)
        .xCurrentTime
        .map_or(ffi::SQLITE_ERROR, |t| t(inner, out))
}

unsafe extern "C" fn x_get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    let inner = inner_vfs(vfs);
    (*inner).xGetLastError.map_or(0, |e| e(inner, n, out))
}

unsafe extern "C" fn x_current_time_int64(
    vfs: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    let inner = inner_vfs(vfs);
    match (*inner).xCurrentTimeInt64 {
        Some(t) if (*inner).iVersion >= 2 => t(inner, out),
        _ => ffi::SQLITE_ERROR,
    }
}

unsafe extern "C" fn x_set_system_call(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    call: ffi::sqlite3_syscall_ptr,
) -> c_int {
    let inner = inner_vfs(vfs);
    match (*inner).xSetSystemCall {
        Some(s) if (*inner).iVersion >= 3 => s(inner, name, call),
        _ => ffi::SQLITE_NOTFOUND,
    }
}

unsafe extern "C" fn x_get_system_call(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
) -> ffi::sqlite3_syscall_ptr {
    let inner = inner_vfs(vfs);
    match (*inner).xGetSystemCall {
        Some(g) if (*inner).iVersion >= 3 => g(inner, name),
        _ => None,
    }
}

unsafe extern "C" fn x_next_system_call(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
) -> *const c_char {
    let inner = inner_vfs(vfs);
    match (*inner).xNextSystemCall {
        Some(n) if (*inner).iVersion >= 3 => n(inner, name),
        _ => ptr::null(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::cell::Cell;

    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};

    use super::*;

    thread_local! {
        // Per thread, so tests running in parallel do not see each other's writes.
        static WAL_WRITES: Cell<u64> = const { Cell::new(0) };
        static ISSUED: Cell<u64> = const { Cell::new(0) };
    }

    /// A write SQLite asked of a buffered WAL file.
    pub(super) fn count_wal_write(buffered: bool) {
        if buffered {
            WAL_WRITES.with(|c| c.set(c.get() + 1));
        }
    }

    /// A write this VFS issued to the wrapped file for a buffered WAL.
    pub(super) fn count_issued_write() {
        ISSUED.with(|c| c.set(c.get() + 1));
    }

    fn counts() -> (u64, u64) {
        (WAL_WRITES.with(Cell::get), ISSUED.with(Cell::get))
    }

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    #[derive(QueryableByName)]
    struct Text1 {
        #[diesel(sql_type = Text)]
        t: String,
    }

    /// A writer as the committer opens it, with a page cache of `cache_pages`.
    fn writer(path: &str, cache_pages: u32) -> SqliteConnection {
        register().unwrap();
        let mut c = SqliteConnection::establish(&uri(path)).unwrap();
        c.batch_execute(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = {cache_pages};"
        ))
        .unwrap();
        c
    }

    fn rows(c: &mut SqliteConnection) -> i64 {
        diesel::sql_query("SELECT count(*) AS n FROM t")
            .get_result::<Count>(c)
            .unwrap()
            .n
    }

    fn integrity(c: &mut SqliteConnection) -> String {
        diesel::sql_query("SELECT integrity_check AS t FROM pragma_integrity_check")
            .get_result::<Text1>(c)
            .unwrap()
            .t
    }

    /// Inserts `n` rows of 500 random bytes each, so every row lands on a new page and the
    /// index on a random one.
    fn insert(c: &mut SqliteConnection, n: i64) {
        c.batch_execute(&format!(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) \
             INSERT INTO t (v) SELECT randomblob(500) FROM k;"
        ))
        .unwrap();
    }

    /// A new database `w.db` in `dir` with table `t` (indexed on `v`), and its writer.
    fn database(dir: &tempfile::TempDir, cache_pages: u32) -> (String, SqliteConnection) {
        let path = dir.path().join("w.db").to_str().unwrap().to_string();
        let mut w = writer(&path, cache_pages);
        w.batch_execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); CREATE INDEX t_v ON t (v);",
        )
        .unwrap();
        (path, w)
    }

    /// What a crash leaves behind: the database and its WAL as they are on disk now, copied to
    /// `dir/name` and opened (so recovered) by a new connection.
    fn crash_copy(dir: &tempfile::TempDir, path: &str, name: &str) -> SqliteConnection {
        let crash = dir.path().join(name);
        std::fs::create_dir(&crash).unwrap();
        std::fs::copy(path, crash.join("w.db")).unwrap();
        let wal = format!("{path}-wal");
        if std::path::Path::new(&wal).exists() {
            std::fs::copy(&wal, crash.join("w.db-wal")).unwrap();
        }
        SqliteConnection::establish(crash.join("w.db").to_str().unwrap()).unwrap()
    }

    #[test]
    fn uri_escapes_what_ends_or_escapes_a_path() {
        assert_eq!(
            uri("/data/a%b?c#d.db"),
            "file:///data/a%25b%3Fc%23d.db?vfs=steward-wal-buffer"
        );
        assert_eq!(
            uri("//srv/x.db"),
            "file:////srv/x.db?vfs=steward-wal-buffer"
        );
        assert_eq!(uri("data/x.db"), "file:data/x.db?vfs=steward-wal-buffer");
        assert!(supports("/data/x.db") && supports("x.db"));
        assert!(!supports("file:x.db?mode=rwc") && !supports(":memory:") && !supports(""));

        // SQLite opens the same file by that URI as by the plain path.
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a%25b?c#d");
        std::fs::create_dir(&odd).unwrap();
        let path = odd.join("w.db");
        let path = path.to_str().unwrap();
        let mut w = writer(path, 4_096);
        w.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);")
            .unwrap();
        insert(&mut w, 10);
        let mut plain = SqliteConnection::establish(path).unwrap();
        assert_eq!(rows(&mut plain), 10);
    }

    /// What the committer relies on: after every commit the WAL on disk holds the whole
    /// transaction, so a copy of the files taken while the writer is still open (what a crash
    /// leaves behind) recovers every committed row, and a reader on the default VFS sees them.
    #[test]
    fn every_commit_is_in_the_file_and_visible_to_readers() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut w) = database(&dir, 4_096);
        let mut reader = SqliteConnection::establish(&path).unwrap();
        let (asked_before, issued_before) = counts();
        let mut expected = 0;
        for (round, n) in [1_i64, 3_000, 50, 8_000].into_iter().enumerate() {
            insert(&mut w, n);
            expected += n;
            assert_eq!(rows(&mut reader), expected, "reader after commit {round}");

            let mut recovered = crash_copy(&dir, &path, &format!("crash{round}"));
            assert_eq!(
                rows(&mut recovered),
                expected,
                "recovered after commit {round}"
            );
            assert_eq!(integrity(&mut recovered), "ok");
        }
        let (asked, issued) = (counts().0 - asked_before, counts().1 - issued_before);
        // Two writes per frame asked; a few per commit issued.
        assert!(asked > 5_000, "SQLite asked for {asked} WAL writes");
        assert!(
            issued * 20 < asked,
            "{issued} writes issued for {asked} asked"
        );
        assert_eq!(integrity(&mut w), "ok");
    }

    /// Another writer (a CLI command in a second process) commits while the buffered writer
    /// holds frames of a transaction it rolled back. Those frames must never reach the file
    /// after the write lock is released, where they would overwrite the other's commit; the
    /// writer then writes again, and closes.
    #[test]
    fn a_rolled_back_transaction_never_overwrites_another_writers_commit() {
        for then_close in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (path, mut w) = database(&dir, 16);
            w.batch_execute("CREATE TABLE u (id INTEGER PRIMARY KEY, v BLOB);")
                .unwrap();
            insert(&mut w, 200);
            let mut other = SqliteConnection::establish(&path).unwrap();
            other
                .batch_execute("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")
                .unwrap();
            other
                .batch_execute("PRAGMA wal_checkpoint(PASSIVE);")
                .unwrap();

            // Spills to the WAL (a 16-page cache), then rolls back without reading back.
            w.batch_execute(
                "BEGIN IMMEDIATE; \
                 WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 300) \
                 INSERT INTO u (v) SELECT randomblob(3000) FROM k; \
                 ROLLBACK;",
            )
            .unwrap();
            // 1.6 MB, so its frames cover the WAL's offsets that the rolled-back ones had.
            insert(&mut other, 400);
            other
                .batch_execute(
                    "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 400) \
                     INSERT INTO u (v) SELECT randomblob(3000) FROM k;",
                )
                .unwrap();
            if !then_close {
                insert(&mut w, 1);
            }
            drop(w);
            let expected = if then_close { 600 } else { 601 };
            assert_eq!(rows(&mut other), expected, "close: {then_close}");
            assert_eq!(integrity(&mut other), "ok", "close: {then_close}");

            let mut recovered = crash_copy(&dir, &path, "crash");
            assert_eq!(
                rows(&mut recovered),
                expected,
                "recovered, close: {then_close}"
            );
            let u = diesel::sql_query("SELECT count(*) AS n FROM u")
                .get_result::<Count>(&mut recovered)
                .unwrap()
                .n;
            assert_eq!(u, 400, "recovered, close: {then_close}");
            assert_eq!(integrity(&mut recovered), "ok");
        }
    }

    /// The committer only uses this VFS in `synchronous = FULL`, but a connection switched to
    /// `NORMAL` (no sync per commit) still leaves every commit in the file for readers: the
    /// release of the write lock writes the buffer out. (The barrier does so earlier, for a
    /// reader that comes between publication and release, a window this test cannot hit.)
    #[test]
    fn without_a_sync_per_commit_readers_still_see_whole_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut w) = database(&dir, 4_096);
        w.batch_execute("PRAGMA synchronous = NORMAL;").unwrap();
        let mut reader = SqliteConnection::establish(&path).unwrap();
        let mut expected = 0;
        for n in [1_i64, 2_000, 30] {
            insert(&mut w, n);
            expected += n;
            assert_eq!(rows(&mut reader), expected);
            assert_eq!(integrity(&mut reader), "ok");
        }
    }

    /// A rolled-back transaction that spilled frames, a checkpoint by the writer that reads the
    /// WAL back, a restart of the WAL from its start, and a checkpoint from another connection
    /// all leave a database that holds exactly the committed rows.
    #[test]
    fn rollbacks_checkpoints_and_restarts_keep_the_database_whole() {
        let dir = tempfile::tempdir().unwrap();
        // A small cache makes SQLite spill pages to the WAL mid-transaction and read them
        // back, the path where an unflushed buffer would be read stale.
        let (path, mut w) = database(&dir, 16);
        insert(&mut w, 2_000);
        let rolled_back = w.transaction::<(), diesel::result::Error, _>(|c| {
            insert(c, 4_000);
            assert_eq!(rows(c), 6_000);
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(rolled_back.is_err());
        assert_eq!(rows(&mut w), 2_000);
        insert(&mut w, 1_000);
        w.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        insert(&mut w, 1_500);
        let mut other = SqliteConnection::establish(&path).unwrap();
        other
            .batch_execute("PRAGMA wal_checkpoint(RESTART);")
            .unwrap();
        insert(&mut w, 500);
        assert_eq!(rows(&mut other), 5_000);
        drop(w);
        assert_eq!(rows(&mut other), 5_000);
        assert_eq!(integrity(&mut other), "ok");
    }
}
