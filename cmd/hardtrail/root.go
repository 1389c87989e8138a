package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/collector"
	"github.com/hardtrail/hardtrail/config"
)

// Exit codes: 0 success; 1 a finding; 2 usage, configuration or input error.
const (
	exitOK      = 0
	exitFinding = 1
	exitUsage   = 2
)

// exitError carries an exit code. A nil err with a code means the command already said why.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// finding ends a command with exit code 1 after it has printed its results.
func finding(err error) error { return &exitError{code: exitFinding, err: err} }

// app holds the global flags and what they lead to, loaded on first use.
type app struct {
	configFlag string
	storeFlag  string
	format     string
	logLevel   string

	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger

	cfg   *config.Config
	store *store.Store
	// readOnly is set by commands that only read the store, which then opens with
	// store.OpenRead.
	readOnly bool
}

// commands are added by each command's file.
var commands []func(*app) *cobra.Command

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "hardtrail",
		Short:         "Evidence that a hardening fix was made and still holds",
		Long:          "hardtrail snapshots security-relevant configuration, ties it to incidents as before and after,\nrenders the diff as evidence, runs regression rules, and alerts when a hardened config regresses.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
				return usageErr("--log-level %q: want debug, info, warn or error", a.logLevel)
			}
			a.log = slog.New(collector.NewLogHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})))
			formats := "text json"
			if f := cmd.Annotations["formats"]; f != "" {
				formats = f // a command with more output formats lists them
			}
			if !slices.Contains(strings.Fields(formats), a.format) {
				return usageErr("--format %q: want one of: %s", a.format, strings.Join(strings.Fields(formats), ", "))
			}
			return nil
		},
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&a.configFlag, "config", "", "config file (default $HARDTRAIL_CONFIG, else "+config.SystemConfig+" if it exists, else one local target)")
	pf.StringVar(&a.storeFlag, "store", "", "evidence store (default $HARDTRAIL_STORE, else the config's store, else "+config.DefaultStore()+")")
	pf.StringVar(&a.format, "format", "text", "output format: text or json, and junit for check (each command's help says which it takes)")
	pf.StringVar(&a.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	for _, mk := range commands {
		root.AddCommand(mk(a))
	}
	a.addCompletions(root)
	refuseUnknown(root)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if a.store != nil {
		a.store.Close()
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "hardtrail:", ee.err)
		}
		return ee.code
	}
	// Anything else (cobra's argument checks, unknown commands) is a usage or input error.
	fmt.Fprintln(stderr, "hardtrail:", err)
	return exitUsage
}

// refuseUnknown makes every command group below root fail on an unknown subcommand (exit 2)
// instead of printing its help; root's own check (cobra's) already does.
func refuseUnknown(root *cobra.Command) {
	for _, c := range root.Commands() {
		refuseUnknown(c)
		if !c.HasSubCommands() || c.Runnable() {
			continue
		}
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return cmd.Help()
		}
	}
}

// config loads the configuration once.
func (a *app) config() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	c, err := config.Resolve(a.configFlag)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	a.cfg = c
	return c, nil
}

// openStore opens the store once.
func (a *app) openStore(ctx context.Context) (*store.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	c, err := a.config()
	if err != nil {
		return nil, err
	}
	open := store.Open
	if a.readOnly {
		open = store.OpenRead
	}
	s, err := open(ctx, c.StorePath(a.storeFlag))
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	a.store = s
	return s, nil
}

// storeName is a store value as Store.Path names it: an absolute path, or a PostgreSQL location
// without its password.
func storeName(v string) string {
	l, err := store.ParseLocation(v)
	if err != nil {
		return store.Redact(v)
	}
	if l.Engine == store.SQLite {
		if abs, err := filepath.Abs(l.Path); err == nil {
			return abs
		}
	}
	return l.String()
}

// redactor loads or creates the store's redaction key.
func (a *app) redactor() (*collector.Redactor, error) {
	c, err := a.config()
	if err != nil {
		return nil, err
	}
	key, err := collector.LoadOrCreateKey(c.KeyFile(c.StorePath(a.storeFlag)))
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return collector.NewRedactor(key)
}

func (a *app) json() bool { return a.format == "json" }

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// resolve turns a REF into a snapshot, with input errors as exit code 2.
func (a *app) resolve(ctx context.Context, ref string) (*store.Snapshot, error) {
	s, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	id, err := s.Resolve(ctx, ref)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	snap, err := s.Get(ctx, id)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return snap, nil
}
