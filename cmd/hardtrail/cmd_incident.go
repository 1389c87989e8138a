package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/internal/sshsig"
	"github.com/hardtrail/hardtrail/rules"
)

func init() { commands = append(commands, tagCmd, incidentCmd) }

// operator is who tags: --by, else the invoking user (SUDO_USER, the login uid), else the
// effective user.
func operator(by string) string {
	if by != "" {
		return by
	}
	if w := whoAmI(); w.Invoker != "" {
		return w.Invoker
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// whoAmI is who runs hardtrail: the user who invoked it (SUDO_USER, else the user of the
// login uid of /proc/self/loginuid) and the effective user.
func whoAmI() *store.Actor {
	w := &store.Actor{}
	if u, err := user.Current(); err == nil {
		w.Effective = u.Username + " (uid " + u.Uid + ")"
	}
	if b, err := os.ReadFile("/proc/self/loginuid"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil && n != 4294967295 {
			uid := int(n)
			w.LoginUID = &uid
			if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
				w.Invoker = u.Username
			}
		}
	}
	if su := os.Getenv("SUDO_USER"); su != "" {
		w.Invoker = su
	}
	return w
}

// tagFlags are the flags shared by tag and snapshot.
type tagFlags struct {
	incident, phase, by, signKey string
}

func (f *tagFlags) add(cmd *cobra.Command, required bool) {
	cmd.Flags().StringVar(&f.incident, "incident", "", "incident ID, such as INC-2026-0042")
	cmd.Flags().StringVar(&f.phase, "phase", "", "before or after")
	cmd.Flags().StringVar(&f.by, "by", "", "operator recorded with the link (default: the invoking user)")
	cmd.Flags().StringVar(&f.signKey, "sign-key", "", "sign the link with this OpenSSH private key (SSHSIG, namespace hardtrail)")
}

// check validates the flags before any work; set reports whether tagging was asked for.
func (f *tagFlags) check() (set bool, err error) {
	if f.incident == "" && f.phase == "" {
		if f.signKey != "" {
			return false, usageErr("--sign-key signs a link: give --incident and --phase")
		}
		return false, nil
	}
	if f.incident == "" || f.phase == "" {
		return false, usageErr("--incident and --phase go together")
	}
	if err := store.CheckIncidentID(f.incident); err != nil {
		return false, usageErr("%v", err)
	}
	if err := store.CheckPhase(f.phase); err != nil {
		return false, usageErr("--phase: %v", err)
	}
	if operator(f.by) == "" {
		return false, usageErr("cannot tell who is tagging: pass --by")
	}
	if f.signKey != "" {
		if _, err := sshsig.LoadSigner(f.signKey); err != nil {
			return false, usageErr("--sign-key: %v", err)
		}
	}
	return true, nil
}

func (f *tagFlags) tag(ctx context.Context, st *store.Store, snapshot, note string) (*store.Link, error) {
	l := store.Link{Incident: f.incident, Phase: f.phase, Snapshot: snapshot, By: operator(f.by), Who: whoAmI(), Note: note}
	if f.signKey != "" {
		snap, err := st.Get(ctx, snapshot)
		if err != nil {
			return nil, err
		}
		l.Target, l.At = snap.Manifest.Target, time.Now().UTC()
		sig, err := signWith(f.signKey, l.SignedBytes())
		if err != nil {
			return nil, err
		}
		l.Signature = sig
	}
	out, err := st.Tag(ctx, l)
	if errors.Is(err, store.ErrSamePhases) || errors.Is(err, store.ErrCaseClash) {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return out, err
}

// signWith signs b with the OpenSSH private key in file, in the hardtrail namespace.
func signWith(file string, b []byte) (string, error) {
	s, err := sshsig.LoadSigner(file)
	if err != nil {
		return "", usageErr("--sign-key: %v", err)
	}
	sig, err := sshsig.Sign(s, sshsig.Namespace, b)
	if err != nil {
		return "", err
	}
	return string(sig), nil
}

func tagCmd(a *app) *cobra.Command {
	var f tagFlags
	var note, void, reason string
	cmd := &cobra.Command{
		Use:   "tag REF --incident ID --phase before|after [--note TEXT] [--sign-key FILE] | tag --void LINK --reason TEXT",
		Short: "Link an existing snapshot to an incident as its before or after state, or void a link",
		Long: "Link a snapshot to an incident as its before or after state. The same snapshot cannot be both.\n" +
			"With --void LINK (the link's ID, or 6+ of its hex digits, as incident show lists them) and --reason,\n" +
			"withdraw a mistaken link: a void record is added and the link stays listed as voided; nothing is deleted.\n" +
			"With --sign-key, the link carries an SSHSIG signature (ssh-keygen -Y sign format, namespace hardtrail).",
		Args: func(cmd *cobra.Command, args []string) error {
			if void != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if void != "" {
				if f.incident != "" || f.phase != "" || note != "" {
					return usageErr("--void takes only --reason (and --by, --sign-key)")
				}
				if strings.TrimSpace(reason) == "" {
					return usageErr("--void needs --reason TEXT: say why the link is withdrawn")
				}
				return a.voidLink(ctx, void, reason, f.by, f.signKey) // addRecord redacts the reason
			}
			if f.incident == "" || f.phase == "" {
				return usageErr("tag needs --incident ID and --phase before|after")
			}
			if _, err := f.check(); err != nil {
				return err
			}
			snap, err := a.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			red, err := a.redactor()
			if err != nil {
				return err
			}
			l, err := f.tag(ctx, a.store, snap.ID, red.RedactString(note))
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(linkJSON(l))
			}
			signed := ""
			if l.Signature != "" {
				signed = ", signed"
			}
			fmt.Fprintf(a.stdout, "%s  %s  %s of %s, by %s%s (link %s)\n", store.Short(l.Snapshot), l.Target, l.Phase, l.Incident, l.By, signed, store.Short(l.ID))
			return nil
		},
	}
	f.add(cmd, true)
	cmd.Flags().StringVar(&note, "note", "", "a note kept with the link")
	cmd.Flags().StringVar(&void, "void", "", "withdraw this link (ID or prefix) by a void record")
	cmd.Flags().StringVar(&reason, "reason", "", "why the link is voided (with --void)")
	return cmd
}

// linkJSON is a link with its ID, for JSON output.
func linkJSON(l *store.Link) any {
	return struct {
		ID string `json:"id"`
		*store.Link
	}{l.ID, l}
}

func (a *app) voidLink(ctx context.Context, ref, reason, by, signKey string) error {
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	l, err := st.FindLink(ctx, ref)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	r, err := a.addRecord(ctx, store.Record{Incident: l.Incident, Kind: store.KindVoid, Link: l.ID, Text: reason, By: operator(by)}, signKey)
	if err != nil {
		return err
	}
	if a.json() {
		return a.printJSON(recordJSON(r))
	}
	fmt.Fprintf(a.stdout, "voided link %s (%s of %s, snapshot %s), by %s: %s\n", store.Short(l.ID), l.Phase, l.Incident, store.Short(l.Snapshot), r.By, r.Text)
	return nil
}

// addRecord appends an incident record, signed with signKey when given.
func (a *app) addRecord(ctx context.Context, r store.Record, signKey string) (*store.Record, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	r.Who = whoAmI()
	if r.By == "" {
		return nil, usageErr("cannot tell who you are: pass --by")
	}
	// Free text is stored like captured content: a secret pasted into a title, a note, the
	// lessons learned or a ticket URL is replaced by its keyed placeholder before storage.
	red, err := a.redactor()
	if err != nil {
		return nil, err
	}
	for _, f := range []*string{&r.Title, &r.Text, &r.Lessons, &r.Ticket, &r.Category} {
		*f = red.RedactString(*f)
	}
	if signKey != "" {
		r.At = time.Now().UTC()
		sig, err := signWith(signKey, r.SignedBytes())
		if err != nil {
			return nil, err
		}
		r.Signature = sig
	}
	out, err := st.AddRecord(ctx, r)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return out, nil
}

func recordJSON(r *store.Record) any {
	return struct {
		ID string `json:"id"`
		*store.Record
	}{r.ID, r}
}

// incidentCache bounds the artifact contents incident list and show keep once read: the
// before, after and newest snapshots of every target, and the distinct contents of a history.
const incidentCache = 64 << 20

func incidentCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "incident", Short: "Incidents: their record, status and timeline"}
	var rulesFlag []string
	cmd.PersistentFlags().StringArrayVar(&rulesFlag, "rules", nil, "rules naming the incident, used only while the store holds no evaluated rules that do (default: the config's rules, else the shipped packs)")
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "Every incident with its status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			set, err := a.ruleSet(ctx, rulesFlag)
			if err != nil {
				return err
			}
			st.CacheBlobs(incidentCache)
			ids, err := st.KnownIncidents(ctx)
			if err != nil {
				return err
			}
			type row struct {
				Incident string          `json:"incident"`
				Status   incident.Status `json:"status"`
				Title    string          `json:"title,omitempty"`
				Closed   bool            `json:"closed"`
				Reopened bool            `json:"reopened,omitempty"`
				Targets  []string        `json:"targets"`
				Last     time.Time       `json:"last_tagged"`
			}
			states, err := analyseAll(ctx, st, ids, set, time.Now())
			if err != nil {
				return err
			}
			var rows []row
			for i, id := range ids {
				s := states[i]
				r := row{Incident: id, Status: s.Status, Title: s.Title(), Closed: s.Closed != nil, Reopened: s.Reopened, Targets: []string{}}
				if len(s.Links) > 0 {
					r.Last = s.Links[len(s.Links)-1].At
				}
				for _, t := range s.Targets {
					r.Targets = append(r.Targets, t.Target)
				}
				rows = append(rows, r)
			}
			if a.json() {
				if rows == nil {
					rows = []row{}
				}
				return a.printJSON(rows)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "INCIDENT\tSTATUS\tTARGETS\tLAST TAGGED\tTITLE")
			for _, r := range rows {
				st := string(r.Status)
				switch {
				case r.Reopened:
					st += " (reopened)"
				case r.Closed:
					st += " (closed)"
				}
				last := "-"
				if !r.Last.IsZero() {
					last = r.Last.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Incident, st, strings.Join(r.Targets, ","), last, r.Title)
			}
			return w.Flush()
		},
	})
	var allowed string
	show := &cobra.Command{
		Use:   "show ID [--allowed-signers FILE]",
		Short: "An incident's record, timeline, what the remediation changed, whether it holds, and its history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			if err := store.CheckIncidentID(args[0]); err != nil {
				return usageErr("%v", err)
			}
			st.CacheBlobs(incidentCache)
			var signers []sshsig.AllowedSigner
			if allowed != "" {
				if signers, err = loadAllowedSigners(allowed); err != nil {
					return usageErr("%v", err)
				}
			}
			set, err := a.ruleSet(ctx, rulesFlag)
			if err != nil {
				return err
			}
			now := time.Now()
			s, err := incident.Analyse(ctx, st, args[0], set, now)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			h, err := statusHistory(ctx, st, s)
			if err != nil {
				return err
			}
			hs, err := s.Histories(ctx, st, now)
			if err != nil {
				return err
			}
			sigs := signatures(s, signers, allowed != "")
			if a.json() {
				linkIDs, recordIDs := []string{}, []string{}
				for _, l := range s.Links {
					linkIDs = append(linkIDs, l.ID)
				}
				for _, r := range s.Records {
					recordIDs = append(recordIDs, r.ID)
				}
				return a.printJSON(struct {
					*incident.State
					*incidentHistory
					Headline   string              `json:"headline"`
					LinkIDs    []string            `json:"link_ids"`
					RecordIDs  []string            `json:"record_ids"`
					Histories  []*incident.History `json:"histories"`
					Signatures []signatureCheck    `json:"signatures"`
				}{s, h, incident.Headline(s.Status, hs), linkIDs, recordIDs, hs, sigs})
			}
			if err := writeIncident(a, s, hs, sigs); err != nil {
				return err
			}
			return writeHistory(a, s, h)
		},
	}
	show.Flags().StringVar(&allowed, "allowed-signers", "", "check operator signatures against this allowed_signers file (ssh-keygen format)")
	cmd.AddCommand(show, incidentOpenCmd(a), incidentNoteCmd(a), incidentCloseCmd(a, &rulesFlag))
	return cmd
}

// analyseWorkers bounds the incidents analysed at once: each waits on the store most of the
// time (a PostgreSQL store is a round trip away), so a few overlap well on few cores.
const analyseWorkers = 4

// analyseAll analyses every incident, a few at once, and returns their states in the order of
// ids; the first error (in that order) ends it.
func analyseAll(ctx context.Context, st *store.Store, ids []string, set *rules.Set, now time.Time) ([]*incident.State, error) {
	states := make([]*incident.State, len(ids))
	errs := make([]error, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(analyseWorkers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				states[i], errs[i] = incident.Analyse(ctx, st, ids[i], set, now)
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return states, nil
}

func incidentOpenCmd(a *app) *cobra.Command {
	var r store.Record
	cmd := &cobra.Command{
		Use:   "open ID --title TEXT [--severity S] [--ticket URL] [--category VECTOR]",
		Short: "Open an incident's record: title, severity, ticket and attack vector",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := store.CheckIncidentID(args[0]); err != nil {
				return usageErr("%v", err)
			}
			if strings.TrimSpace(r.Title) == "" {
				return usageErr("--title TEXT is required")
			}
			if r.Severity != "" && !slices.Contains([]string{"info", "low", "medium", "high", "critical"}, r.Severity) {
				return usageErr("--severity %q: want info, low, medium, high or critical", r.Severity)
			}
			r.Incident, r.Kind, r.By = args[0], store.KindOpen, operator(r.By)
			out, err := a.addRecord(cmd.Context(), r, "")
			if err != nil {
				return err
			}
			return a.printRecord(out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Title, "title", "", "what happened, in one line")
	f.StringVar(&r.Severity, "severity", "", "info, low, medium, high or critical")
	f.StringVar(&r.Ticket, "ticket", "", "the incident's ticket (URL)")
	f.StringVar(&r.Category, "category", "", "the attack vector or category, such as weak-ssh-config")
	f.StringVar(&r.By, "by", "", "operator (default: the invoking user)")
	return cmd
}

func incidentNoteCmd(a *app) *cobra.Command {
	var by string
	cmd := &cobra.Command{
		Use:   "note ID TEXT",
		Short: "Add a note to an incident's record (root cause, a step taken, a reference)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := store.CheckIncidentID(args[0]); err != nil {
				return usageErr("%v", err)
			}
			out, err := a.addRecord(cmd.Context(), store.Record{Incident: args[0], Kind: store.KindNote, Text: args[1], By: operator(by)}, "")
			if err != nil {
				return err
			}
			return a.printRecord(out)
		},
	}
	cmd.Flags().StringVar(&by, "by", "", "operator (default: the invoking user)")
	return cmd
}

// maxLessons bounds a lessons-learned file.
const maxLessons = 1 << 20

func incidentCloseCmd(a *app, rulesFlag *[]string) *cobra.Command {
	var approver, lessons, by, signKey string
	cmd := &cobra.Command{
		Use:   "close ID --approver NAME [--lessons FILE] [--sign-key FILE]",
		Short: "Close a verified incident with its approver and lessons learned",
		Long: "Close an incident: allowed only while it is verified (proven on every target). The close record\n" +
			"keeps the approver, the lessons learned (the file's text) and the status. A closed incident that\n" +
			"regresses is reopened: its status is regressed again, and its metric says so.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := store.CheckIncidentID(args[0]); err != nil {
				return usageErr("%v", err)
			}
			if strings.TrimSpace(approver) == "" {
				return usageErr("--approver NAME is required")
			}
			r := store.Record{Incident: args[0], Kind: store.KindClose, Approver: approver, By: operator(by)}
			if lessons != "" {
				b, err := readCapped(lessons, maxLessons)
				if err != nil {
					return usageErr("--lessons: %v", err)
				}
				r.Lessons = string(b)
			}
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			set, err := a.ruleSet(ctx, *rulesFlag)
			if err != nil {
				return err
			}
			s, err := incident.Analyse(ctx, st, args[0], set, time.Now())
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			if s.Status != incident.Verified {
				var causes []string
				for _, t := range s.Targets {
					causes = append(causes, t.Target+": "+t.Cause)
				}
				return finding(fmt.Errorf("incident %s is %s, not verified, so it cannot be closed (%s)", s.Incident, s.Status, strings.Join(causes, "; ")))
			}
			r.Incident, r.Status = s.Incident, string(s.Status)
			out, err := a.addRecord(ctx, r, signKey)
			if err != nil {
				return err
			}
			return a.printRecord(out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&approver, "approver", "", "who approves the closure")
	f.StringVar(&lessons, "lessons", "", "a file with the lessons learned")
	f.StringVar(&by, "by", "", "operator (default: the invoking user)")
	f.StringVar(&signKey, "sign-key", "", "sign the close record with this OpenSSH private key (SSHSIG, namespace hardtrail)")
	return cmd
}

func readCapped(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

func (a *app) printRecord(r *store.Record) error {
	if a.json() {
		return a.printJSON(recordJSON(r))
	}
	what := map[string]string{store.KindOpen: "opened", store.KindNote: "noted", store.KindClose: "closed", store.KindVoid: "voided a link of"}[r.Kind]
	signed := ""
	if r.Signature != "" {
		signed = ", signed"
	}
	fmt.Fprintf(a.stdout, "%s %s, by %s%s (record %s)\n", what, r.Incident, r.By, signed, store.Short(r.ID))
	return nil
}

func loadAllowedSigners(file string) ([]sshsig.AllowedSigner, error) {
	b, err := readCapped(file, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("allowed signers: %w", err)
	}
	return sshsig.ParseAllowedSigners(file, b)
}

// signatureCheck is the outcome of checking one signed link or record.
type signatureCheck struct {
	What    string `json:"what"` // "link ID" or "record ID"
	By      string `json:"by"`
	Key     string `json:"key,omitempty"`
	Signers string `json:"signers,omitempty"`
	Status  string `json:"status"` // good, bad, not-allowed, or valid but not checked against allowed signers
	Error   string `json:"error,omitempty"`
}

// signatures lists every signed link and record of s, checked against signers when check.
func signatures(s *incident.State, signers []sshsig.AllowedSigner, check bool) []signatureCheck {
	out := []signatureCheck{}
	one := func(what, by, sig string, msg []byte) {
		c := signatureCheck{What: what, By: by, Status: "valid, signer not checked (give --allowed-signers)"}
		key, err := sshsig.Verify([]byte(sig), msg, sshsig.Namespace)
		switch {
		case err != nil:
			c.Status, c.Error = "bad", err.Error()
		case !check:
			c.Key = ssh.FingerprintSHA256(key)
		default:
			c.Key = ssh.FingerprintSHA256(key)
			who, err := sshsig.Allowed(signers, key, "", sshsig.Namespace)
			if err != nil {
				c.Status, c.Error = "not-allowed", err.Error()
			} else {
				c.Status, c.Signers = "good", strings.Join(who, ",")
			}
		}
		out = append(out, c)
	}
	for _, l := range s.Links {
		if l.Signature != "" {
			one("link "+store.Short(l.ID), l.By, l.Signature, l.SignedBytes())
		}
	}
	for _, r := range s.Records {
		if r.Signature != "" {
			one(r.Kind+" record "+store.Short(r.ID), r.By, r.Signature, r.SignedBytes())
		}
	}
	return out
}

func writeIncident(a *app, s *incident.State, hs []*incident.History, sigs []signatureCheck) error {
	w := a.stdout
	fmt.Fprintf(w, "incident %s: %s\n", s.Incident, incident.Headline(s.Status, hs))
	if s.Reopened {
		fmt.Fprintf(w, "  closed by %s on %s, reopened: it is %s now\n", s.Closed.Approver, s.Closed.At.Format(time.RFC3339), s.Status)
	} else if s.Closed != nil {
		fmt.Fprintf(w, "  closed, approved by %s on %s\n", s.Closed.Approver, s.Closed.At.Format(time.RFC3339))
	}
	if len(s.Records) > 0 {
		fmt.Fprintln(w, "\nrecord")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, r := range s.Records {
			text := ""
			switch r.Kind {
			case store.KindOpen:
				text = r.Title
				for _, kv := range [][2]string{{"severity", r.Severity}, {"ticket", r.Ticket}, {"category", r.Category}} {
					if kv[1] != "" {
						text += "; " + kv[0] + " " + kv[1]
					}
				}
			case store.KindNote:
				text = r.Text
			case store.KindClose:
				text = "approved by " + r.Approver + " while " + r.Status
				if r.Lessons != "" {
					text += "; lessons: " + strings.Join(strings.Fields(r.Lessons), " ")
				}
			case store.KindVoid:
				text = "voided link " + store.Short(r.Link) + ": " + r.Text
			}
			fmt.Fprintf(tw, "  %s\t%s\tby %s\t%s\n", r.At.Format(time.RFC3339), r.Kind, store.Who(r.By, r.Who), text)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\ntimeline")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range s.Links {
		void := ""
		if v, ok := s.Voided(l.ID); ok {
			void = fmt.Sprintf("  VOIDED by %s on %s: %s", store.Who(v.By, v.Who), v.At.Format(time.RFC3339), v.Reason)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\tlink %s\tby %s\t%s%s\n", l.At.Format(time.RFC3339), l.Phase, l.Target, store.Short(l.Snapshot), store.Short(l.ID), store.Who(l.By, l.Who), l.Note, void)
	}
	tw.Flush()
	ri := s.Rules
	switch ri.From {
	case incident.FromStore:
		fmt.Fprintf(w, "\nlinked rules: %d, from the store (rule set %s, linked rules %s)\n", len(ri.Linked), ri.SetDigest, ri.Digest)
	case incident.FromGiven:
		fmt.Fprintf(w, "\nlinked rules: %d, from the rules given; not yet evaluated on the incident's targets (hardtrail check or the agent keeps them in the store)\n", len(ri.Linked))
	default:
		fmt.Fprintln(w, "\nlinked rules: none name the incident")
	}
	for _, c := range ri.Changed {
		fmt.Fprintf(w, "  changed since the previous evaluation: %s\n", c)
	}
	for _, c := range ri.Given {
		fmt.Fprintf(w, "  the rules given differ from the store's and are not used: %s\n", c)
	}
	for i, t := range s.Targets {
		fmt.Fprintf(w, "\ntarget %s: %s (%s)\n", t.Target, t.Status, t.Cause)
		if t.Before != nil && t.After != nil {
			fmt.Fprintf(w, "  before %s, after %s, newest %s\n", store.Short(t.Before.Snapshot), store.Short(t.After.Snapshot), store.Short(t.Latest))
		}
		for _, art := range t.Artifacts {
			line := "  " + art.Name + ": "
			if art.Hardened {
				line += fmt.Sprintf("hardened (+%d -%d), ", art.Added, art.Removed)
			}
			line += art.State
			if art.Note != "" {
				line += " (" + art.Note + ")"
			}
			fmt.Fprintln(w, line)
			if art.Regression == nil {
				continue
			}
			for _, h := range art.Regression.Hardened {
				for _, l := range h.Back {
					fmt.Fprintf(w, "    reverted: line %d is back: %s\n", l.Line, l.Text)
				}
				for _, l := range h.Gone {
					fmt.Fprintf(w, "    reverted: line %d is gone: %s\n", l.Line, l.Text)
				}
			}
			for _, d := range art.Regression.Drift {
				for _, l := range d.Removed {
					fmt.Fprintf(w, "    drift: -%s\n", l.Text)
				}
				for _, l := range d.Added {
					fmt.Fprintf(w, "    drift: +%s\n", l.Text)
				}
			}
		}
		if len(t.RulesBefore)+len(t.RulesAfter)+len(t.RulesLatest) > 0 {
			fmt.Fprintln(w, "  linked rules (before / after / newest):")
			outcome := func(rs []rules.Result, id string) string {
				for _, r := range rs {
					if r.Rule == id {
						return string(r.Outcome)
					}
				}
				return "-"
			}
			ids := t.RulesLatest
			if len(ids) == 0 {
				ids = t.RulesAfter
			}
			for _, r := range ids {
				fmt.Fprintf(w, "    %s: %s / %s / %s  %s\n", r.Rule, outcome(t.RulesBefore, r.Rule), outcome(t.RulesAfter, r.Rule), outcome(t.RulesLatest, r.Rule), r.Title)
			}
		}
		if h := hs[i]; h != nil {
			fmt.Fprintf(w, "  since the first after %s (%s): %d snapshots, %d regressions, %s regressed in total\n",
				store.Short(h.Since), h.SinceAt.Format(time.RFC3339), h.Snapshots, len(h.Episodes), incident.Seconds(h.Regressed))
			for n, e := range h.Episodes {
				restored := "not restored yet"
				if e.Restored != nil {
					restored = fmt.Sprintf("restored %s by %s after %s", e.Restored.Format(time.RFC3339), store.Short(e.RestoredBy), incident.Seconds(e.Duration))
				}
				fmt.Fprintf(w, "    regression %d: first seen %s in %s, %s\n", n+1, e.FirstSeen.Format(time.RFC3339), store.Short(e.Snapshot), restored)
				for _, l := range e.Reverted {
					fmt.Fprintf(w, "      reverted %s\n", l)
				}
				for _, r := range e.RulesFailed {
					fmt.Fprintf(w, "      rule failed: %s\n", r)
				}
			}
			for _, sp := range h.Held {
				fmt.Fprintf(w, "    %s held unchanged from %s to %s, %d captures, at most %s apart\n", store.Short(sp.Snapshot),
					sp.Since.Format(time.RFC3339), sp.Until.Format(time.RFC3339), sp.Count, incident.Seconds(sp.MaxGap))
			}
		}
	}
	if len(sigs) > 0 {
		fmt.Fprintln(w, "\noperator signatures")
		for _, c := range sigs {
			line := fmt.Sprintf("  %s by %s: %s", c.What, c.By, c.Status)
			if c.Key != "" {
				line += " (" + c.Key + ")"
			}
			if c.Signers != "" {
				line += ", allowed as " + c.Signers
			}
			if c.Error != "" {
				line += ": " + c.Error
			}
			fmt.Fprintln(w, line)
		}
	}
	return nil
}

// warnUnknownIncidents warns of every rule that names an incident the store does not know
// (neither linked nor opened), so that a typo in an incidents list does not go unseen.
func (a *app) warnUnknownIncidents(ctx context.Context, st *store.Store, set *rules.Set) error {
	known, err := st.KnownIncidents(ctx)
	if err != nil {
		return err
	}
	folded := map[string]bool{}
	for _, k := range known {
		folded[strings.ToLower(k)] = true
	}
	for _, r := range set.Rules() {
		for _, id := range r.Incidents {
			if !folded[strings.ToLower(id)] {
				fmt.Fprintf(a.stderr, "hardtrail: warning: %s: rule %q names incident %s, which the store does not know (open it with hardtrail incident open %s --title TEXT, or fix the ID)\n",
					r.Source, r.ID, id, id)
			}
		}
	}
	return nil
}

// lintIncidents warns of rules naming incidents the store does not know, when the store
// exists (linting never creates one).
func (a *app) lintIncidents(ctx context.Context, set *rules.Set) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	if p := cfg.StorePath(a.storeFlag); store.IsPath(p) {
		if _, err := os.Stat(p); err != nil {
			return nil
		}
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	return a.warnUnknownIncidents(ctx, st, set)
}
