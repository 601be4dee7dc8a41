//! Multi-row INSERTs whose statements are prepared once per connection.
//!
//! diesel caches a prepared statement only when its SQL is fixed by its type; a batch insert of
//! a slice has as many `VALUES` groups as rows, so every call was parsed again (about 8 % of the
//! writer thread in a pull profile). A batch of a fixed-size array (`&[T; N]`) has a fixed
//! shape and is cached. [`insert_chunked!`] splits rows into arrays of a few fixed sizes, so
//! any row count runs as cached statements: 1,000 rows are two 500-row statements, 37 rows
//! are 20 + 5 + 5 + 5 + 1 + 1.

/// Inserts every row of `$rows` (a slice of `Insertable` rows) into `$table` over `$conn`
/// (`&mut DbConnection`) in statements of 500, 100, 20, 5 and 1 rows; evaluates to
/// `diesel::QueryResult<usize>` (rows inserted). 500 rows of the widest table (19 columns)
/// bind 9,500 values, well under SQLite's 32,766 and PostgreSQL's 65,535.
///
/// A macro, not a function: the generic bounds diesel needs for "a batch insert of `[T; N]`
/// into any table on either backend" would be longer than the body.
#[macro_export]
macro_rules! insert_chunked {
    ($conn:expr, $table:expr, $rows:expr) => {{
        let conn: &mut $crate::DbConnection = $conn;
        let rows = $rows;
        (|| -> ::diesel::QueryResult<usize> {
            let mut inserted = 0usize;
            $crate::insert_chunked!(@sizes conn, $table, rows, inserted, 500, 100, 20, 5, 1);
            Ok(inserted)
        })()
    }};
    // For each size, largest first: every full chunk of that size, then the rest moves on.
    (@sizes $conn:ident, $table:expr, $rest:ident, $inserted:ident, $($n:literal),+) => {
        $(
            let (full, $rest) = $rest.as_chunks::<$n>();
            for chunk in full {
                $inserted += $crate::insert_chunked!(@one $conn, $table, chunk)?;
            }
        )+
        let _ = $rest; // empty: the last size is 1
    };
    // MultiConnection cannot run multi-row inserts; each backend can.
    (@one $conn:expr, $table:expr, $chunk:expr) => {
        match &mut *$conn {
            $crate::DbConnection::Sqlite(c) => {
                ::diesel::RunQueryDsl::execute(::diesel::insert_into($table).values($chunk), c)
            }
            $crate::DbConnection::Postgres(c) => {
                ::diesel::RunQueryDsl::execute(::diesel::insert_into($table).values($chunk), c)
            }
        }
    };
}
