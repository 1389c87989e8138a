package store

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// Engine names a database engine behind the store.
type Engine string

// The engines a store can live in.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// Location is where a store lives: a SQLite file or a PostgreSQL database.
type Location struct {
	Engine Engine
	// Path is the SQLite file; DSN the PostgreSQL connection string (URL or key=value), with
	// any password it holds.
	Path, DSN string
}

// ErrBadLocation is returned for a store value that names no store this hardtrail can open.
var ErrBadLocation = errors.New("bad store location")

// schemeRE matches the start of a URL: a scheme and "://".
var schemeRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`) })

// dbSchemeRE matches a PostgreSQL URL missing its "//", which would otherwise name a file.
var dbSchemeRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^(postgres|postgresql):`) })

// kvRE matches the start of a key=value connection string: a libpq keyword and '='.
var kvRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*(host|hostaddr|port|dbname|user|password|passfile|sslmode|service|application_name|connect_timeout|options|target_session_attrs|sslrootcert|sslcert|sslkey)\s*=`)
})

// ParseLocation reads a store value: a postgres:// or postgresql:// URL or a key=value
// connection string (host=/run/postgresql dbname=hardtrail) is a PostgreSQL database; a value
// with any other URL scheme is an error, never a path; anything else is a SQLite file path.
func ParseLocation(v string) (Location, error) {
	if strings.TrimSpace(v) == "" {
		return Location{}, fmt.Errorf("%w: empty", ErrBadLocation)
	}
	if !strings.ContainsAny(v, ":=") {
		return Location{Engine: SQLite, Path: v}, nil // no URL, no keyword: no expression to compile
	}
	if m := schemeRE().FindStringSubmatch(v); m != nil {
		switch strings.ToLower(m[1]) {
		case "postgres", "postgresql":
			if _, err := url.Parse(v); err != nil {
				return Location{}, fmt.Errorf("%w: %s: %v", ErrBadLocation, Redact(v), redactErr(err))
			}
			return Location{Engine: Postgres, DSN: v}, nil
		case "file", "sqlite":
			return Location{}, fmt.Errorf("%w: %s: give a SQLite store as a plain path, not a %s:// URL", ErrBadLocation, Redact(v), m[1])
		}
		return Location{}, fmt.Errorf("%w: %s: unknown scheme %q (a store is a SQLite path, a postgres:// or postgresql:// URL, or a key=value connection string)", ErrBadLocation, Redact(v), m[1])
	}
	if m := dbSchemeRE().FindStringSubmatch(v); m != nil {
		return Location{}, fmt.Errorf("%w: %s: a %s URL starts with %s://", ErrBadLocation, Redact(v), m[1], m[1])
	}
	if kvRE().MatchString(v) {
		return Location{Engine: Postgres, DSN: v}, nil
	}
	return Location{Engine: SQLite, Path: v}, nil
}

// IsPath reports whether a store value is a SQLite path (and so may be resolved relative to a
// directory).
func IsPath(v string) bool {
	l, err := ParseLocation(v)
	return err == nil && l.Engine == SQLite
}

// String is the location for messages: the path, or the connection string without its
// password.
func (l Location) String() string {
	if l.Engine == SQLite {
		return l.Path
	}
	return Redact(l.DSN)
}

var kvPasswordRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`) })

// Redact removes the password from a connection string (URL or key=value), for messages and
// logs.
func Redact(dsn string) string {
	if schemeRE().MatchString(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			// Cut the userinfo by hand: an unparsable URL may still hold a password.
			rest := dsn[strings.Index(dsn, "://")+3:]
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				return dsn[:strings.Index(dsn, "://")+3] + "xxxxx@" + rest[at+1:]
			}
			return dsn
		}
		_, has := u.User.Password()
		q := u.Query()
		if !has && !q.Has("password") {
			return dsn
		}
		if has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPasswordRE().ReplaceAllString(dsn, "${1}xxxxx")
}

// redactErr is err's message for a URL that failed to parse: url.Error repeats the URL.
func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "unparsable"
}
