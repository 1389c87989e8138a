package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// HeadFormat names the layout of a head digest's input.
const HeadFormat = "hardtrail-head/1"

// ChainHead is the newest record of one chain.
type ChainHead struct {
	Chain string `json:"chain"` // "snapshots/TARGET", or a chain table: "held", "links", ...
	Seq   int64  `json:"seq"`
	ID    string `json:"id"`
}

// Head is one digest over the newest record of every chain in the store: the snapshots of each
// target, links, results, status events, held spans, and every chain added later. Every record
// hashes the one before it, so the head commits to everything stored; a store extends a head
// when each chain it names still has that record at that seq (appending is not forgery).
//
// The digest is the hex SHA-256 of Text: the line "hardtrail-head/1", then one line
// "CHAIN SEQ ID" for each chain that has records, sorted by chain name (bytewise), every line
// ending in "\n". Head records each head it takes in the store (table heads), so that the
// digest alone later names the seqs to check.
type Head struct {
	Digest string      `json:"digest"`
	Chains []ChainHead `json:"chains"`
}

// Text is the digest's input.
func (h *Head) Text() string {
	var b strings.Builder
	b.WriteString(HeadFormat + "\n")
	for _, c := range h.Chains {
		fmt.Fprintf(&b, "%s %d %s\n", c.Chain, c.Seq, c.ID)
	}
	return b.String()
}

func newHead(cs []ChainHead) *Head {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Chain < cs[j].Chain })
	h := &Head{Chains: cs}
	if h.Chains == nil {
		h.Chains = []ChainHead{}
	}
	h.Digest = Hash([]byte(h.Text()))
	return h
}

// parseHead reads a head's Text back; the digest is recomputed.
func parseHead(text string) (*Head, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 2 || lines[0] != HeadFormat || lines[len(lines)-1] != "" {
		return nil, fmt.Errorf("not a %s head", HeadFormat)
	}
	var cs []ChainHead
	for i, l := range lines[1 : len(lines)-1] {
		f := strings.Split(l, " ")
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want CHAIN SEQ ID", i+2)
		}
		seq, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || seq < 1 {
			return nil, fmt.Errorf("line %d: bad seq %q", i+2, f[1])
		}
		cs = append(cs, ChainHead{Chain: f[0], Seq: seq, ID: f[2]})
	}
	h := newHead(cs)
	if h.Text() != text {
		return nil, errors.New("lines are not sorted or not canonical")
	}
	return h, nil
}

// ValidHeadDigest reports whether d has the form of a head digest (64 lower-case hex digits).
func ValidHeadDigest(d string) bool {
	return len(d) == 64 && isHex(d) && strings.ToLower(d) == d
}

func init() {
	registerTable("heads", map[string]string{
		"digest": "SHA-256 of head, recomputed",
		"head":   "the store must still extend it; a removed row fails verification with --head of its digest",
	})
}

// Head takes the store's head in one transaction and records it (see Head). A head equal to
// one recorded before costs nothing.
func (s *Store) Head(ctx context.Context) (*Head, error) {
	var h *Head
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var cs []ChainHead
		rows, err := tx.QueryContext(ctx, `SELECT target, seq, id FROM snapshots s WHERE seq = (SELECT max(seq) FROM snapshots WHERE target = s.target)`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c ChainHead
			if err := rows.Scan(&c.Chain, &c.Seq, &c.ID); err != nil {
				rows.Close()
				return err
			}
			c.Chain = "snapshots/" + c.Chain
			cs = append(cs, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, c := range chains {
			ch := ChainHead{Chain: c.table}
			err := tx.QueryRowContext(ctx, `SELECT seq, id FROM `+c.table+` ORDER BY seq DESC LIMIT 1`).Scan(&ch.Seq, &ch.ID)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			cs = append(cs, ch)
		}
		h = newHead(cs)
		_, err = tx.ExecContext(ctx, `INSERT INTO heads (digest, head) VALUES (?, ?) ON CONFLICT DO NOTHING`, h.Digest, h.Text())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store head: %w", err)
	}
	return h, nil
}

// head is the head of what verification read.
func (v *verifier) head() *Head {
	var cs []ChainHead
	for name, c := range v.chains {
		cs = append(cs, ChainHead{Chain: name, Seq: c.seq, ID: c.newest})
	}
	return newHead(cs)
}

// verifyHeads checks every recorded head: its digest, and that the store extends it; and, when
// want is set, that the store extends that head.
func (v *verifier) verifyHeads(want string) error {
	if want != "" && !ValidHeadDigest(want) {
		return fmt.Errorf("head %q is not a head digest (64 lower-case hex digits, as store head prints)", want)
	}
	rows, err := v.tx.QueryContext(v.ctx, `SELECT digest, head FROM heads ORDER BY digest`)
	if err != nil {
		return fmt.Errorf("heads: %w", err)
	}
	defer rows.Close()
	found := want == "" || want == v.rep.Head.Digest
	for rows.Next() {
		var digest, text string
		if err := rows.Scan(&digest, &text); err != nil {
			return fmt.Errorf("heads: %w", err)
		}
		v.rep.Heads++
		p := Problem{Table: "heads", Msg: "head " + short(digest) + ": "}
		h, err := parseHead(text)
		switch {
		case err != nil:
			p.Msg += "the recorded head is corrupt: " + err.Error()
			v.add(p)
			continue
		case h.Digest != digest:
			p.Msg += "the recorded head hashes to " + short(h.Digest) + ": the row was altered"
			v.add(p)
			continue
		}
		if digest == want {
			found = true
		}
		v.extends(h)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("heads: %w", err)
	}
	if !found {
		v.add(Problem{Table: "heads", Msg: "head " + want + " is neither this store's head nor recorded in it: " +
			"the store does not extend it (records or the head's own row were removed), or it was taken from another store"})
	}
	return nil
}

// extends adds a problem for every chain of h that the store no longer extends.
func (v *verifier) extends(h *Head) {
	for _, c := range h.Chains {
		p := Problem{Table: c.Chain, Record: c.Seq}
		if t, ok := strings.CutPrefix(c.Chain, "snapshots/"); ok {
			p.Table, p.Target = "snapshots", t
		}
		have := v.chains[c.Chain]
		var id string
		if have != nil {
			id = have.ids[c.Seq]
		}
		switch {
		case id == c.ID:
			continue
		case have == nil:
			p.Msg = fmt.Sprintf("the store does not extend head %s: chain %s has no records, the head has seq %d (%s): records were removed",
				short(h.Digest), c.Chain, c.Seq, short(c.ID))
		case id == "" && have.seq < c.Seq:
			p.Msg = fmt.Sprintf("the store does not extend head %s: chain %s ends at seq %d, the head has seq %d (%s): records were removed",
				short(h.Digest), c.Chain, have.seq, c.Seq, short(c.ID))
		case id == "":
			p.Msg = fmt.Sprintf("the store does not extend head %s: chain %s has no record at seq %d (the head has %s)",
				short(h.Digest), c.Chain, c.Seq, short(c.ID))
		default:
			p.Msg = fmt.Sprintf("the store does not extend head %s: record %d of chain %s is %s, the head has %s",
				short(h.Digest), c.Seq, c.Chain, short(id), short(c.ID))
		}
		v.add(p)
	}
}
