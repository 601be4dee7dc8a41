# A model of the blind index's WAL writes (BENCHMARKS.md, "Session 14"): frames per entry for
# random B-tree inserts in commits of 1,150 (today) against a sequential pending table merged
# in key-range slices (the proposed design). Run: python3 blind_index_merge.py (needs ~1 GB
# in /tmp and a Python whose SQLite has dbstat). Not part of the build or the tests.
import os, sqlite3, time
P = '/tmp/steward-blind-model.db'
T = 'ten_01jabcdefghjkmnpqrstvwxyz0'  # a tenant id's length
def vid(i): return 'vis_%026d' % i
def wal_frames():
    try: return (os.path.getsize(P + '-wal') - 32) // (4096 + 24)
    except FileNotFoundError: return 0
for f in (P, P + '-wal', P + '-shm'):
    if os.path.exists(f): os.remove(f)
c = sqlite3.connect(P, isolation_level=None)
c.executescript("PRAGMA page_size=4096; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-8192;")
c.executescript("""
CREATE TABLE blind (tenant_id TEXT NOT NULL, field TEXT NOT NULL, blind BLOB NOT NULL, visitor_id TEXT NOT NULL,
  PRIMARY KEY (tenant_id, field, blind, visitor_id)) WITHOUT ROWID;
CREATE TABLE pending (seq INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, field TEXT NOT NULL, blind BLOB NOT NULL, visitor_id TEXT NOT NULL);
""")
N = 1_000_000
c.execute('BEGIN')
c.executemany('INSERT INTO blind VALUES (?,?,?,?)', ((T, 'email', os.urandom(32), vid(i)) for i in range(N)))
c.execute('COMMIT')
c.execute('PRAGMA wal_checkpoint(TRUNCATE)')
leaves = c.execute("SELECT count(*) FROM dbstat WHERE name='blind'").fetchone()[0]
print(f'blind table: {N} entries, {leaves} pages')
c.execute('PRAGMA wal_autocheckpoint=0')
K, COMMITS = 1150, 87   # about 100k entries
nxt = N
def commit_random():
    global nxt
    c.execute('BEGIN')
    c.executemany('INSERT INTO blind VALUES (?,?,?,?)', ((T, 'email', os.urandom(32), vid(nxt + j)) for j in range(K)))
    c.execute('COMMIT'); nxt += K
f0 = wal_frames(); t = time.time()
for _ in range(COMMITS): commit_random()
today = (wal_frames() - f0) / (K * COMMITS)
print(f'today (random inserts, {K} per commit): {today:.2f} frames per entry, {K*COMMITS/(time.time()-t):.0f} entries/s')
c.execute('PRAGMA wal_checkpoint(TRUNCATE)')
# Proposed: append to pending, then merge in 16 key-range slices, then delete pending.
f0 = wal_frames(); t = time.time()
for _ in range(COMMITS):
    c.execute('BEGIN')
    c.executemany('INSERT INTO pending (tenant_id, field, blind, visitor_id) VALUES (?,?,?,?)',
                  ((T, 'email', os.urandom(32), vid(nxt + j)) for j in range(K)))
    c.execute('COMMIT'); nxt += K
fa = wal_frames()
for s in range(16):
    lo = bytes([s * 16]); hi = bytes([s * 16 + 16]) if s < 15 else None
    c.execute('BEGIN')
    if hi: c.execute('INSERT INTO blind SELECT tenant_id, field, blind, visitor_id FROM pending WHERE blind >= ? AND blind < ? ORDER BY tenant_id, field, blind', (lo, hi))
    else: c.execute('INSERT INTO blind SELECT tenant_id, field, blind, visitor_id FROM pending WHERE blind >= ? ORDER BY tenant_id, field, blind', (lo,))
    c.execute('COMMIT')
fm = wal_frames()
c.execute('BEGIN'); c.execute('DELETE FROM pending'); c.execute('COMMIT')
fd = wal_frames(); n = K * COMMITS
print(f'proposed: append {(fa-f0)/n:.2f} + merge {(fm-fa)/n:.2f} + delete {(fd-fm)/n:.2f} = {(fd-f0)/n:.2f} frames per entry, {n/(time.time()-t):.0f} entries/s')
c.close()
for f in (P, P + '-wal', P + '-shm'):
    if os.path.exists(f): os.remove(f)
