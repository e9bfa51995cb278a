//! `fusion serve --quota N/PERIOD --quota-db FILE`: per-client quotas of
//! samples (rows of the mixed batch, `N = RB + T` per Fusion batch) per
//! period, kept in an embedded database (redb, pure Rust, ACID) so that the
//! counts survive restarts.
//!
//! Periods are fixed windows aligned to the Unix epoch (a `1h` quota resets
//! at every full hour UTC, a `1d` quota at midnight UTC). A client is its
//! certificate's name (`--client-ca` is required: without client identities
//! there is nobody to count for). The quota is checked when a session starts
//! (a client whose quota is used up is refused before any protocol work) and
//! before every batch: a batch that would take the client past its quota is
//! refused before any of its protocol work, and the session ends. A batch is
//! counted when it is admitted, whether or not it then completes.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fusion_engine::BatchGate;
use fusion_engine::wire::QuotaStatus;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tracing::error;

/// Client name -> (window start, Unix seconds; samples used in it).
const USAGE: TableDefinition<'static, &str, (u64, u64)> = TableDefinition::new("usage");

/// A quota: `limit` samples per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    /// Samples per period.
    pub limit: u64,
    /// The period.
    pub period: Duration,
}

impl FromStr for QuotaSpec {
    type Err = String;

    /// `N/PERIOD`: `N` samples, `PERIOD` a positive whole number with a unit
    /// `s`, `m`, `h` or `d` (`1000/1h`, `50000/1d`, `10/30s`).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("quota {s:?}: expected N/PERIOD, e.g. 1000/1h or 50000/1d");
        let (n, p) = s.split_once('/').ok_or_else(bad)?;
        let limit: u64 = n.trim().parse().map_err(|_| bad())?;
        let p = p.trim();
        let unit = p.chars().last().ok_or_else(bad)?;
        let count: u64 = p[..p.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
        let secs = match unit {
            's' => Some(count),
            'm' => count.checked_mul(60),
            'h' => count.checked_mul(3600),
            'd' => count.checked_mul(86_400),
            _ => None,
        }
        .ok_or_else(bad)?;
        if limit == 0 || secs == 0 {
            return Err(format!("quota {s:?}: N and PERIOD must be positive"));
        }
        Ok(QuotaSpec {
            limit,
            period: Duration::from_secs(secs),
        })
    }
}

/// Errors of the quota database.
fn db_error(path: &Path, e: impl Into<redb::Error>) -> String {
    format!("quota database {}: {}", path.display(), e.into())
}

/// The quota counts of every client, persisted in a redb file.
#[derive(Debug)]
pub struct QuotaBook {
    db: Database,
    path: PathBuf,
    spec: QuotaSpec,
}

impl QuotaBook {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path, spec: QuotaSpec) -> Result<Self, String> {
        let db = Database::create(path).map_err(|e| db_error(path, e))?;
        let txn = db.begin_write().map_err(|e| db_error(path, e))?;
        txn.open_table(USAGE).map_err(|e| db_error(path, e))?;
        txn.commit().map_err(|e| db_error(path, e))?;
        Ok(QuotaBook {
            db,
            path: path.to_path_buf(),
            spec,
        })
    }

    /// The window containing `now` (Unix seconds): (start, end).
    fn window(&self, now: u64) -> (u64, u64) {
        let p = self.spec.period.as_secs().max(1);
        let start = now - now % p;
        (start, start.saturating_add(p))
    }

    fn status(&self, used: u64, requested: u64, now: u64) -> QuotaStatus {
        QuotaStatus {
            limit: self.spec.limit,
            used,
            requested,
            period_secs: self.spec.period.as_secs(),
            resets_at_unix: self.window(now).1,
        }
    }

    /// Samples `client` used in the window containing `now`.
    pub fn used(&self, client: &str, now: u64) -> Result<u64, String> {
        let txn = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let table = txn.open_table(USAGE).map_err(|e| db_error(&self.path, e))?;
        let (start, _) = self.window(now);
        let row = table
            .get(client)
            .map_err(|e| db_error(&self.path, e))?
            .map(|v| v.value());
        Ok(match row {
            Some((s, used)) if s == start => used,
            _ => 0,
        })
    }

    /// At session start: refuses a client with no samples left.
    pub fn check(&self, client: &str, now: u64) -> Result<Result<(), QuotaStatus>, String> {
        let used = self.used(client, now)?;
        Ok(if used >= self.spec.limit {
            Err(self.status(used, 0, now))
        } else {
            Ok(())
        })
    }

    /// Before a batch: counts `samples` for `client` if that stays within
    /// the quota (one write transaction: concurrent sessions of a client
    /// cannot both pass on the same remainder), refuses it otherwise.
    pub fn charge(
        &self,
        client: &str,
        samples: u64,
        now: u64,
    ) -> Result<Result<(), QuotaStatus>, String> {
        let (start, _) = self.window(now);
        let txn = self.db.begin_write().map_err(|e| db_error(&self.path, e))?;
        let verdict = {
            let mut table = txn.open_table(USAGE).map_err(|e| db_error(&self.path, e))?;
            let used = match table
                .get(client)
                .map_err(|e| db_error(&self.path, e))?
                .map(|v| v.value())
            {
                Some((s, used)) if s == start => used,
                _ => 0,
            };
            match used.checked_add(samples) {
                Some(total) if total <= self.spec.limit => {
                    table
                        .insert(client, (start, total))
                        .map_err(|e| db_error(&self.path, e))?;
                    Ok(())
                }
                _ => Err(self.status(used, samples, now)),
            }
        };
        txn.commit().map_err(|e| db_error(&self.path, e))?;
        Ok(verdict)
    }
}

/// Now, Unix seconds.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The [`BatchGate`] of one client's session.
#[derive(Debug)]
pub struct ClientGate {
    /// The quota book.
    pub book: Arc<QuotaBook>,
    /// The client's name.
    pub client: String,
}

impl BatchGate for ClientGate {
    fn admit(&self, samples: u64) -> Result<(), QuotaStatus> {
        let now = now_unix();
        match self.book.charge(&self.client, samples, now) {
            Ok(verdict) => verdict,
            Err(e) => {
                // Fail closed: a batch is never served uncounted.
                error!(client = %self.client, error = %e, "quota database failed; refusing the batch");
                Err(self.book.status(self.book.spec.limit, samples, now))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_specs_parse_with_units_and_refuse_nonsense() {
        let q: QuotaSpec = "1000/1h".parse().expect("1h");
        assert_eq!((q.limit, q.period.as_secs()), (1000, 3600));
        let q: QuotaSpec = "5/30s".parse().expect("30s");
        assert_eq!(q.period.as_secs(), 30);
        assert_eq!(
            "7/2d".parse::<QuotaSpec>().map(|q| q.period.as_secs()),
            Ok(172_800)
        );
        for bad in [
            "", "10", "10/", "/1h", "0/1h", "10/0h", "10/1w", "x/1h", "10/h",
        ] {
            assert!(bad.parse::<QuotaSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn charges_count_per_client_and_window_and_persist_across_reopening() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("q.redb");
        let spec: QuotaSpec = "100/1h".parse()?;
        let t = 1_796_500_800 + 60; // 20:01 UTC
        {
            let book = QuotaBook::open(&path, spec)?;
            assert_eq!(book.charge("alice", 60, t)?, Ok(()));
            let refused = book.charge("alice", 41, t)?.expect_err("past the quota");
            assert_eq!((refused.used, refused.requested), (60, 41));
            assert_eq!(refused.resets_at_utc(), "2026-12-05T21:00:00Z");
            assert_eq!(book.charge("alice", 40, t)?, Ok(()));
            assert!(book.check("alice", t)?.is_err());
            assert_eq!(book.charge("bob", 100, t)?, Ok(()));
        }
        let book = QuotaBook::open(&path, spec)?;
        assert_eq!(book.used("alice", t + 60)?, 100);
        // The next window starts from zero.
        assert_eq!(book.used("alice", t + 3600)?, 0);
        assert_eq!(book.check("alice", t + 3600)?, Ok(()));
        Ok(())
    }
}
