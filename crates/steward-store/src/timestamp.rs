//! `DbTimestamp`: a `NaiveDateTime` column value with a fast SQLite text codec.
//!
//! SQLite has no time type; diesel stores a `Timestamp` as text (`2026-11-21 23:50:00.123456`),
//! formatting each value through a chrono `strftime` string and parsing each by trying up to 18
//! chrono formats in turn. On the hot tables that was 8.9 % of the server's CPU during a pull
//! (three timestamps per visitor loaded, one per audit event, two per recipient written;
//! BENCHMARKS.md, "Session 6"). This type writes and reads that same text by hand. Anything the
//! fast parser does not recognise goes to diesel's own parser and the formatter falls back to
//! chrono outside the common range, so stored values are byte-for-byte what diesel writes and
//! the two codecs can only differ in speed. PostgreSQL's binary codec is already direct and is
//! used unchanged.
//!
//! diesel's `AsExpression` cannot be implemented for chrono's type outside diesel, hence the
//! newtype; it dereferences to the `NaiveDateTime` and converts both ways.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Timestamp;
use diesel::sqlite::Sqlite;

use crate::connection::MultiBackend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Timestamp)]
pub struct DbTimestamp(pub NaiveDateTime);

impl From<NaiveDateTime> for DbTimestamp {
    fn from(t: NaiveDateTime) -> Self {
        DbTimestamp(t)
    }
}

impl From<DbTimestamp> for NaiveDateTime {
    fn from(t: DbTimestamp) -> Self {
        t.0
    }
}

impl std::ops::Deref for DbTimestamp {
    type Target = NaiveDateTime;

    fn deref(&self) -> &NaiveDateTime {
        &self.0
    }
}

impl ToSql<Timestamp, Sqlite> for DbTimestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(format_sqlite(self.0));
        Ok(IsNull::No)
    }
}

impl FromSql<Timestamp, Sqlite> for DbTimestamp {
    fn from_sql(
        mut value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        if let Some(t) = parse_sqlite(value.read_text().as_bytes()) {
            return Ok(DbTimestamp(t));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(DbTimestamp)
    }
}

impl ToSql<Timestamp, Pg> for DbTimestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <NaiveDateTime as ToSql<Timestamp, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<Timestamp, Pg> for DbTimestamp {
    fn from_sql(
        value: <Pg as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(DbTimestamp)
    }
}

// The `MultiConnection` backend hands each value to the backend the connection holds, which
// then uses the impls above.
impl ToSql<Timestamp, MultiBackend> for DbTimestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((Timestamp, self));
        Ok(IsNull::No)
    }
}

impl FromSql<Timestamp, MultiBackend> for DbTimestamp {
    fn from_sql(
        value: <MultiBackend as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        value.from_sql::<Self, Timestamp>()
    }
}

/// Formats `t` exactly as diesel's SQLite codec does (chrono's `%F %T%.f`): the fraction is
/// left out when zero and otherwise takes 3, 6 or 9 digits, the fewest that hold it exactly.
/// Years outside 0..=9999 and leap seconds go to chrono itself.
pub fn format_sqlite(t: NaiveDateTime) -> String {
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return t.format("%F %T%.f").to_string();
    }
    let mut out = Vec::with_capacity(29);
    // Each part is in range by the checks above and chrono's invariants, so `as u8` on a single
    // decimal digit cannot truncate.
    let digits = |out: &mut Vec<u8>, v: u32, width: u32| {
        let mut div = 10u32.pow(width - 1);
        while div > 0 {
            out.push(b'0' + ((v / div) % 10) as u8);
            div /= 10;
        }
    };
    digits(&mut out, year.unsigned_abs(), 4);
    out.push(b'-');
    digits(&mut out, t.month(), 2);
    out.push(b'-');
    digits(&mut out, t.day(), 2);
    out.push(b' ');
    digits(&mut out, t.hour(), 2);
    out.push(b':');
    digits(&mut out, t.minute(), 2);
    out.push(b':');
    digits(&mut out, t.second(), 2);
    if nanos != 0 {
        out.push(b'.');
        if nanos % 1_000_000 == 0 {
            digits(&mut out, nanos / 1_000_000, 3);
        } else if nanos % 1_000 == 0 {
            digits(&mut out, nanos / 1_000, 6);
        } else {
            digits(&mut out, nanos, 9);
        }
    }
    // Only ASCII digits and separators were written.
    String::from_utf8(out).unwrap_or_else(|_| t.format("%F %T%.f").to_string())
}

/// Parses the form `format_sqlite` (and diesel) writes: `YYYY-MM-DD HH:MM:SS` with an optional
/// fraction of 1 to 9 digits. Anything else, leap seconds included, returns `None` and is left
/// to diesel's parser.
pub fn parse_sqlite(b: &[u8]) -> Option<NaiveDateTime> {
    let shape_ok = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    if !shape_ok {
        return None;
    }
    let num = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(&b[0..4])?).ok()?;
    let (month, day) = (num(&b[5..7])?, num(&b[8..10])?);
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if second > 59 {
        return None;
    }
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let width = u32::try_from(frac.len()).ok()?;
            num(frac)? * 10u32.pow(9 - width)
        }
        _ => return None,
    };
    NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, minute, second, nanos)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_nano_opt(h, mi, s, nanos)
            .unwrap()
    }

    fn samples() -> Vec<NaiveDateTime> {
        let mut v = vec![
            at(2026, 11, 21, 23, 50, 0, 0),
            at(2026, 11, 21, 23, 50, 0, 123_456_000),
            at(2026, 11, 21, 23, 50, 0, 120_000_000),
            at(2026, 11, 21, 23, 50, 0, 123_456_789),
            at(2026, 11, 21, 23, 50, 0, 1),
            at(2026, 11, 21, 23, 50, 0, 1_000),
            at(2026, 11, 21, 23, 50, 0, 1_000_000),
            at(1, 1, 1, 0, 0, 0, 1_000),
            at(9999, 12, 31, 23, 59, 59, 999_999_999),
            at(2024, 2, 29, 12, 0, 0, 500_000),
            // Outside the fast formatter's range, and a leap second: chrono's own output.
            at(10_000, 1, 1, 0, 0, 0, 0),
            at(2016, 12, 31, 23, 59, 59, 1_500_000_000),
            chrono::Utc::now().naive_utc(),
        ];
        // A spread of ordinary values, deterministic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = i64::try_from(x % 4_000_000_000).unwrap();
            let nanos = u32::try_from((x >> 32) % 1_000_000_000).unwrap();
            let nanos = match x % 4 {
                0 => 0,
                1 => nanos / 1_000_000 * 1_000_000,
                2 => nanos / 1_000 * 1_000,
                _ => nanos,
            };
            v.push(
                chrono::DateTime::from_timestamp(secs, nanos)
                    .unwrap()
                    .naive_utc(),
            );
        }
        v
    }

    #[test]
    fn format_is_byte_for_byte_chrono() {
        for t in samples() {
            assert_eq!(format_sqlite(t), t.format("%F %T%.f").to_string(), "{t:?}");
        }
    }

    #[test]
    fn parse_agrees_with_chrono() {
        for t in samples() {
            let s = t.format("%F %T%.f").to_string();
            let chrono = NaiveDateTime::parse_from_str(&s, "%F %T%.f").unwrap();
            match parse_sqlite(s.as_bytes()) {
                Some(ours) => assert_eq!(ours, chrono, "{s}"),
                // Only the forms left to diesel on purpose.
                None => assert!(t.year() > 9999 || t.nanosecond() >= 1_000_000_000, "{s}"),
            }
        }
        for s in ["2026-11-21 23:50:00.1", "2026-11-21 23:50:00.12345"] {
            let chrono = NaiveDateTime::parse_from_str(s, "%F %T%.f").unwrap();
            assert_eq!(parse_sqlite(s.as_bytes()), Some(chrono), "{s}");
        }
        for s in [
            "2026-11-21T23:50:00",
            "2026-11-21 23:50:00Z",
            "2026-11-21 23:50:60",
            "2026-02-30 00:00:00",
            "2026-11-21 23:50:00.",
            "2026-11-21 23:50:00.1234567890",
            "2026-11-21 23:5a:00",
            "",
        ] {
            assert!(parse_sqlite(s.as_bytes()).is_none(), "{s}");
        }
    }

    diesel::table! {
        times (id) {
            id -> Integer,
            at -> Timestamp,
        }
    }

    /// Written through the fast codec, read back through diesel's (and the other way round),
    /// on the concrete connection and through the `MultiConnection`; forms diesel accepts that
    /// the fast parser does not (an ISO `T`, a zone) still read.
    #[test]
    fn sqlite_round_trips_both_ways() {
        let mut c = diesel::SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute("CREATE TABLE times (id INTEGER PRIMARY KEY, at TEXT NOT NULL)")
            .unwrap();
        let values = samples();
        for (i, t) in values.iter().enumerate() {
            let i = i32::try_from(i).unwrap();
            let written = if i % 2 == 0 {
                diesel::insert_into(times::table)
                    .values((times::id.eq(i), times::at.eq(DbTimestamp(*t))))
                    .execute(&mut c)
            } else {
                diesel::insert_into(times::table)
                    .values((times::id.eq(i), times::at.eq(*t)))
                    .execute(&mut c)
            };
            written.unwrap();
        }
        let ours: Vec<DbTimestamp> = times::table
            .order(times::id)
            .select(times::at)
            .load(&mut c)
            .unwrap();
        let theirs: Vec<NaiveDateTime> = times::table
            .order(times::id)
            .select(times::at)
            .load(&mut c)
            .unwrap();
        let ours: Vec<NaiveDateTime> = ours.into_iter().map(Into::into).collect();
        assert_eq!(ours, values);
        assert_eq!(theirs, values);

        c.batch_execute(
            "INSERT INTO times VALUES (100000, '2026-11-21T23:50:00'), \
             (100001, '2026-11-21 23:50:00.5+00:00')",
        )
        .unwrap();
        let odd: Vec<DbTimestamp> = times::table
            .filter(times::id.ge(100_000))
            .order(times::id)
            .select(times::at)
            .load(&mut c)
            .unwrap();
        assert_eq!(odd[0].0, at(2026, 11, 21, 23, 50, 0, 0));
        assert_eq!(odd[1].0, at(2026, 11, 21, 23, 50, 0, 500_000_000));

        round_trips_through_multi_connection(&mut crate::DbConnection::Sqlite(c), 200_000);
    }

    /// Written and read back as `DbTimestamp` through the `MultiConnection`.
    fn round_trips_through_multi_connection(conn: &mut crate::DbConnection, id: i32) {
        let t = at(2026, 11, 29, 14, 0, 0, 250_000);
        diesel::insert_into(times::table)
            .values((times::id.eq(id), times::at.eq(DbTimestamp(t))))
            .execute(conn)
            .unwrap();
        let back: DbTimestamp = times::table.find(id).select(times::at).first(conn).unwrap();
        assert_eq!(back.0, t);
    }

    /// The same on PostgreSQL, when the test run has one (`STEWARD_TEST_POSTGRES_URL`).
    #[test]
    fn postgres_round_trips() {
        let Some(db) = crate::testing::TestDatabase::create() else {
            return;
        };
        let mut c = diesel::PgConnection::establish(&db.url).unwrap();
        c.batch_execute("CREATE TABLE times (id INTEGER PRIMARY KEY, at TIMESTAMP NOT NULL)")
            .unwrap();
        let t = at(2026, 11, 29, 14, 0, 0, 250_000);
        diesel::insert_into(times::table)
            .values((times::id.eq(1), times::at.eq(DbTimestamp(t))))
            .execute(&mut c)
            .unwrap();
        let back: NaiveDateTime = times::table
            .find(1)
            .select(times::at)
            .first(&mut c)
            .unwrap();
        assert_eq!(back, t);
        let mut multi = crate::DbConnection::Postgres(c);
        let back: DbTimestamp = times::table
            .find(1)
            .select(times::at)
            .first(&mut multi)
            .unwrap();
        assert_eq!(back.0, t);
        round_trips_through_multi_connection(&mut multi, 2);
    }
}
