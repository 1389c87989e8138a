package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Leases divide a fleet's targets among the agents that share one store: each target has a row
// naming the agent that holds it until when, and when its last capture started; each agent has
// a row saying until when it is alive and which targets it divides with others. An agent renews
// its leases and claims free or expired ones up to its fair share, and captures only the
// targets it holds that nobody captured less than an interval ago.
//
// The lease table is the store's one coordination table: mutable state, not evidence. It is
// updated in place and rows are deleted, so the writer role may UPDATE and DELETE it (and no
// other table); store verify does not read it, store head does not cover it, and store copy
// does not copy it. Nothing in it changes what any evidence chain says.

// leaseTable is the schema step that creates the lease table. Times are unix milliseconds by
// the database's clock, so that agents on machines whose clocks differ agree on expiry.
const leaseTable = `CREATE TABLE leases (
		kind        TEXT NOT NULL CHECK (kind IN ('target', 'agent')),
		name        TEXT NOT NULL,    -- the target's name, or the agent's ID
		holder      TEXT NOT NULL,    -- target: the agent holding its lease, '' when free
		fleet       TEXT NOT NULL,    -- agent: the digest of the targets it divides (LeaseFleet)
		expires_at  INTEGER NOT NULL, -- unix ms: the lease, or the agent's liveness, ends
		captured_at INTEGER NOT NULL, -- target: unix ms its last capture started, 0 before the first
		captured_by TEXT NOT NULL,    -- target: the agent that started it
		PRIMARY KEY (kind, name)
	);`

// pgLeaseGrants lets every role that may insert into the lease table (the writer, by the
// default privileges of deploy/postgres/grants.sql) update and delete its rows too.
const pgLeaseGrants = `DO $$
DECLARE r name;
BEGIN
	FOR r IN SELECT DISTINCT ro.rolname FROM pg_class c, aclexplode(c.relacl) a JOIN pg_roles ro ON ro.oid = a.grantee
		WHERE c.oid = 'leases'::regclass AND a.privilege_type = 'INSERT' AND a.grantee <> c.relowner
	LOOP
		EXECUTE format('GRANT UPDATE, DELETE ON leases TO %I', r);
	END LOOP;
END
$$;`

// coordination names the tables that are coordination state rather than evidence, and why:
// verification does not cover them, and the writer role may change them.
var coordination = map[string]string{
	"leases": "which agent captures which target, renewed every few seconds; see lease.go",
}

// CoordinationTables are the tables that hold coordination state, not evidence.
func CoordinationTables() []string {
	var out []string
	for t := range coordination {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// LeaseRequest is one agent's renewal of its leases.
type LeaseRequest struct {
	// Agent is the agent's ID, unique among the agents sharing the store.
	Agent string
	// Targets are the targets the agent is configured with; agents configured with the same
	// targets divide them among themselves.
	Targets []string
	// TTL is how long the leases, and the agent's liveness, last without a renewal.
	TTL time.Duration
	// Every is the capture interval: a target is due when its last capture, by any agent,
	// started at least DueAfter(Every) ago.
	Every time.Duration
	// Join, on an agent's first renewal, records it alive and renews what it holds (an agent
	// restarted under the same ID) but claims nothing and marks nothing due: agents that start
	// together then count one another before any claims a share.
	Join bool
}

// DueAfter is how long after a capture started a target is due again, for captures every
// interval: nine tenths of it, so that the jitter of one agent's ticks never skips a capture.
func DueAfter(interval time.Duration) time.Duration { return interval * 9 / 10 }

// Leases is the outcome of a renewal.
type Leases struct {
	// Held are the targets the agent holds now, sorted.
	Held []string
	// Due are those of Held whose last capture started at least DueAfter(Every) ago, sorted:
	// each to capture once BeginCapture says it may.
	Due []string
	// Claimed are those of Held it did not hold before; Released those it gave up (its share
	// shrank, or they are no longer configured).
	Claimed, Released []string
	// Agents is the number of live agents dividing the same targets, this one included; Share
	// the number of targets each holds at most.
	Agents, Share int
	// At is the time of the renewal, by the database's clock.
	At time.Time
}

// LeaseFleet is the digest that tells which agents divide the same targets.
func LeaseFleet(targets []string) string {
	names := slices.Clone(targets)
	slices.Sort(names)
	h := sha256.Sum256([]byte(strings.Join(names, "\n")))
	return hex.EncodeToString(h[:8])
}

// maxLeaseNames bounds the names in one statement, below SQLite's limit of bound parameters.
const maxLeaseNames = 10000

// Lease renews the agent's leases in one transaction: it records the agent alive until TTL from
// now, keeps up to its fair share (the configured targets divided by the live agents
// configured alike, rounded up) of the targets it holds and releases the rest, claims free or
// expired targets up to that share (least recently captured first; on PostgreSQL with FOR
// UPDATE SKIP LOCKED, so that agents renewing at once never wait for or claim the same row),
// and lists as due the held targets whose last capture started at least DueAfter(Every) ago.
func (s *Store) Lease(ctx context.Context, req LeaseRequest) (*Leases, error) {
	if req.Agent == "" || req.TTL <= 0 || req.Every <= 0 {
		return nil, errors.New("lease: an agent ID, a TTL and an interval are required")
	}
	names := slices.Clone(req.Targets)
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > maxLeaseNames {
		return nil, fmt.Errorf("lease: %d targets, at most %d", len(names), maxLeaseNames)
	}
	var out *Leases
	err := s.writeTxOn(ctx, s.coord, nil, func(tx *sql.Tx) error {
		var err error
		out, err = s.lease(ctx, tx, req, names)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: leases of agent %s: %w", s.path, req.Agent, s.wrapBusy(err))
	}
	return out, nil
}

// forUpdate is the locking clause of a select of rows to change: PostgreSQL locks them; a
// SQLite write transaction holds the whole file already.
func (s *Store) forUpdate(skipLocked bool) string {
	switch {
	case s.engine != Postgres:
		return ""
	case skipLocked:
		return " FOR UPDATE SKIP LOCKED"
	}
	return " FOR UPDATE"
}

func (s *Store) dbNow(ctx context.Context, tx *sql.Tx) (int64, error) {
	var ms int64
	err := tx.QueryRowContext(ctx, `SELECT `+s.nowMS()).Scan(&ms)
	return ms, err
}

func (s *Store) lease(ctx context.Context, tx *sql.Tx, req LeaseRequest, names []string) (*Leases, error) {
	now, err := s.dbNow(ctx, tx)
	if err != nil {
		return nil, err
	}
	exp := now + req.TTL.Milliseconds()
	if _, err := tx.ExecContext(ctx, `INSERT INTO leases (kind, name, holder, fleet, expires_at, captured_at, captured_by)
		VALUES ('agent', ?, '', ?, ?, 0, '')
		ON CONFLICT (kind, name) DO UPDATE SET fleet = excluded.fleet, expires_at = excluded.expires_at`,
		req.Agent, LeaseFleet(names), exp); err != nil {
		return nil, err
	}
	// Agents gone for a day are forgotten.
	if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE kind = 'agent' AND expires_at < ?`, now-(24*time.Hour).Milliseconds()); err != nil {
		return nil, err
	}
	// Every configured target has a row; names are sorted, so agents adding the same rows at
	// once lock them in the same order.
	var rows int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM leases WHERE kind = 'target' AND name IN (`+placeholders(len(names))+`)`,
		anys(names)...).Scan(&rows); err != nil {
		return nil, err
	}
	for i := 0; i < len(names) && rows < len(names); i += 500 {
		chunk := names[i:min(i+500, len(names))]
		q := `INSERT INTO leases (kind, name, holder, fleet, expires_at, captured_at, captured_by) VALUES ` +
			strings.TrimSuffix(strings.Repeat(`('target', ?, '', '', 0, 0, ''), `, len(chunk)), ", ") +
			` ON CONFLICT (kind, name) DO NOTHING`
		if _, err := tx.ExecContext(ctx, q, anys(chunk)...); err != nil {
			return nil, err
		}
	}
	var live int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM leases WHERE kind = 'agent' AND fleet = ? AND expires_at > ?`,
		LeaseFleet(names), now).Scan(&live); err != nil {
		return nil, err
	}
	live = max(live, 1)
	out := &Leases{Agents: live, Share: (len(names) + live - 1) / live, At: time.UnixMilli(now).UTC()}

	type row struct {
		name     string
		captured int64
	}
	scan := func(q string, args ...any) ([]row, error) {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.name, &r.captured); err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, rows.Err()
	}
	update := func(set string, setArgs []any, which []string) error {
		if len(which) == 0 {
			return nil
		}
		args := append(append(setArgs, req.Agent), anys(which)...)
		_, err := tx.ExecContext(ctx, `UPDATE leases SET `+set+` WHERE kind = 'target' AND holder = ? AND name IN (`+placeholders(len(which))+`)`, args...)
		return err
	}

	// What it holds: up to its share of the configured targets, the rest released.
	mine, err := scan(`SELECT name, captured_at FROM leases WHERE kind = 'target' AND holder = ? ORDER BY name`+s.forUpdate(false), req.Agent)
	if err != nil {
		return nil, err
	}
	var held []row
	for _, r := range mine {
		if _, ok := slices.BinarySearch(names, r.name); ok && len(held) < out.Share {
			held = append(held, r)
		} else {
			out.Released = append(out.Released, r.name)
		}
	}
	if err := update(`holder = '', expires_at = 0`, nil, out.Released); err != nil {
		return nil, err
	}
	keep := make([]string, len(held))
	for i, r := range held {
		keep[i] = r.name
	}
	if err := update(`expires_at = ?`, []any{exp}, keep); err != nil {
		return nil, err
	}
	// Claims, least recently captured first.
	if need := out.Share - len(held); need > 0 && len(names) > 0 && !req.Join {
		free, err := scan(`SELECT name, captured_at FROM leases WHERE kind = 'target' AND name IN (`+placeholders(len(names))+`)
			AND holder <> ? AND (holder = '' OR expires_at <= ?) ORDER BY captured_at, name LIMIT ?`+s.forUpdate(true),
			append(anys(names), req.Agent, now, need)...)
		if err != nil {
			return nil, err
		}
		for _, r := range free {
			out.Claimed = append(out.Claimed, r.name)
		}
		if len(free) > 0 {
			args := append([]any{req.Agent, exp}, anys(out.Claimed)...)
			if _, err := tx.ExecContext(ctx, `UPDATE leases SET holder = ?, expires_at = ? WHERE kind = 'target' AND name IN (`+
				placeholders(len(free))+`)`, args...); err != nil {
				return nil, err
			}
		}
		held = append(held, free...)
	}
	due := now - DueAfter(req.Every).Milliseconds()
	for _, r := range held {
		out.Held = append(out.Held, r.name)
		if r.captured <= due && !req.Join {
			out.Due = append(out.Due, r.name)
		}
	}
	slices.Sort(out.Held)
	slices.Sort(out.Due)
	slices.Sort(out.Claimed)
	return out, nil
}

// BeginCapture records that the agent starts capturing target now, and reports true, when it
// holds the target's unexpired lease and nobody started capturing it less than
// DueAfter(every) ago; otherwise it changes nothing and reports false. It is one statement,
// so of agents asking at once for one target at most one is told to capture it.
func (s *Store) BeginCapture(ctx context.Context, agent, target string, every time.Duration) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE leases SET captured_at = n.ms, captured_by = ? FROM (SELECT `+s.nowMS()+` AS ms) AS n
		WHERE leases.kind = 'target' AND leases.name = ? AND leases.holder = ? AND leases.expires_at > n.ms AND leases.captured_at <= n.ms - ?`,
		agent, target, agent, DueAfter(every).Milliseconds())
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return false, fmt.Errorf("store %s: begin the capture of %s by agent %s: %w", s.path, target, agent, s.wrapBusy(err))
	}
	return n == 1, nil
}

// nowMS is the SQL of the database's clock in unix milliseconds.
func (s *Store) nowMS() string {
	if s.engine == Postgres {
		return `CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT)`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
}

// ReleaseLeases gives up every lease of the agent and forgets it, so that the other agents
// take its targets at once (an agent that stops cleanly does this).
func (s *Store) ReleaseLeases(ctx context.Context, agent string) error {
	err := s.writeTxOn(ctx, s.coord, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE leases SET holder = '', expires_at = 0 WHERE kind = 'target' AND holder = ?`, agent); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE kind = 'agent' AND name = ?`, agent)
		return err
	})
	if err != nil {
		return fmt.Errorf("store %s: release the leases of agent %s: %w", s.path, agent, s.wrapBusy(err))
	}
	return nil
}

// Lease is one target's row of the lease table.
type Lease struct {
	Target     string
	Holder     string // '' when free
	Expires    time.Time
	Captured   time.Time // zero before the first capture
	CapturedBy string
}

// TargetLeases reads every target's lease, sorted by target.
func (s *Store) TargetLeases(ctx context.Context) ([]Lease, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, holder, expires_at, captured_at, captured_by FROM leases WHERE kind = 'target' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store %s: leases: %w", s.path, err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var exp, cap int64
		if err := rows.Scan(&l.Target, &l.Holder, &exp, &cap, &l.CapturedBy); err != nil {
			return nil, err
		}
		l.Expires = time.UnixMilli(exp).UTC()
		if cap > 0 {
			l.Captured = time.UnixMilli(cap).UTC()
		}
		out = append(out, l)
	}
	return out, rows.Err()
}
