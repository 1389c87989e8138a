package rules

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// fileProbe checks captured files: path is an artifact name, or a glob over artifact names
// such as sshd/config/etc/ssh/sshd_config.d/*. The regexps match each line on its own, as
// grep does, so ^ and $ match at the line's start and end. present must match a line of at
// least one of the files; absent must match no line of any; max_mode, owner and group must hold for every file. A glob that matches no
// artifact satisfies absent, max_mode, owner and group, and fails present.
type fileProbe struct {
	Path    string `toml:"path" json:"path"`
	Present string `toml:"present" json:"present,omitempty"`
	Absent  string `toml:"absent" json:"absent,omitempty"`
	MaxMode string `toml:"max_mode" json:"max_mode,omitempty"` // octal, such as "0644": no permission bit beyond these
	Owner   string `toml:"owner" json:"owner,omitempty"`
	Group   string `toml:"group" json:"group,omitempty"`

	present, absent *pattern
	maxMode         uint32
}

func (p *fileProbe) check() error {
	if p.Path == "" {
		return fieldErr("path", "missing (an artifact name or a glob over artifact names)")
	}
	if _, err := path.Match(p.Path, ""); err != nil {
		return fieldErr("path", "invalid glob %q: %v", p.Path, err)
	}
	if p.Present == "" && p.Absent == "" && p.MaxMode == "" && p.Owner == "" && p.Group == "" {
		return fieldErr("", "no condition (add present, absent, max_mode, owner or group)")
	}
	var err error
	if p.Present != "" {
		if p.present, err = newPattern(p.Present); err != nil {
			return fieldErr("present", "%v", err)
		}
	}
	if p.Absent != "" {
		if p.absent, err = newPattern(p.Absent); err != nil {
			return fieldErr("absent", "%v", err)
		}
	}
	if p.MaxMode != "" {
		m, err := strconv.ParseUint(p.MaxMode, 8, 32)
		if err != nil || m > 0o7777 {
			return fieldErr("max_mode", "invalid mode %q (octal, such as \"0644\")", p.MaxMode)
		}
		p.maxMode = uint32(m)
	}
	return nil
}

func (p *fileProbe) expected() string {
	var parts []string
	if p.Present != "" {
		parts = append(parts, "contains /"+p.Present+"/")
	}
	if p.Absent != "" {
		parts = append(parts, "lacks /"+p.Absent+"/")
	}
	if p.MaxMode != "" {
		parts = append(parts, "mode within "+p.MaxMode)
	}
	if p.Owner != "" {
		parts = append(parts, "owner "+p.Owner)
	}
	if p.Group != "" {
		parts = append(parts, "group "+p.Group)
	}
	return strings.Join(parts, " and ")
}

// UnixMode is a FileMode's permission bits with setuid, setgid and sticky as chmod reads them:
// 0644, 04755.
func UnixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

func (p *fileProbe) eval(e *env) verdict {
	want := p.expected()
	var names []string
	if strings.ContainsAny(p.Path, "*?[") {
		for _, n := range e.allNames() {
			if ok, _ := path.Match(p.Path, n); ok {
				names = append(names, n)
			}
		}
	} else {
		names = []string{p.Path}
	}
	var arts []Artifact
	for _, n := range names {
		a, why := e.artifact(n)
		if why != "" {
			return erred(want, "%s", why)
		}
		needMeta := p.MaxMode != "" || p.Owner != "" || p.Group != ""
		if needMeta && a.Command != nil {
			return erred(want, "artifact %s is command output; it has no file mode or owner", n)
		}
		if needMeta && a.Owner == "" && a.Mode == 0 {
			return erred(want, "artifact %s has no recorded mode or owner", n)
		}
		arts = append(arts, a)
	}
	var problems, facts []string
	found := ""
	if p.present != nil {
		m := p.present.matcher()
		for _, a := range arts {
			if n, line, ok := matchLine(e.ctx, m, a.Content); ok {
				found = fmt.Sprintf("%s:%d: %s", a.Name, n, clip(line))
				break
			}
		}
		if found == "" {
			problems = append(problems, fmt.Sprintf("no line matches /%s/ in %s", p.Present, describeFiles(p.Path, names)))
		} else {
			facts = append(facts, found)
		}
	}
	if p.absent != nil {
		m := p.absent.matcher()
		for _, a := range arts {
			if n, line, ok := matchLine(e.ctx, m, a.Content); ok {
				problems = append(problems, fmt.Sprintf("%s:%d: %s", a.Name, n, clip(line)))
			}
		}
	}
	for _, a := range arts {
		var meta []string
		if p.MaxMode != "" {
			m := UnixMode(a.Mode)
			meta = append(meta, fmt.Sprintf("mode %04o", m))
			if m&^p.maxMode != 0 {
				problems = append(problems, fmt.Sprintf("%s has mode %04o, wider than %s", a.Name, m, p.MaxMode))
			}
		}
		if p.Owner != "" {
			meta = append(meta, "owner "+a.Owner)
			if a.Owner != p.Owner {
				problems = append(problems, fmt.Sprintf("%s is owned by %s, want %s", a.Name, a.Owner, p.Owner))
			}
		}
		if p.Group != "" {
			meta = append(meta, "group "+a.Group)
			if a.Group != p.Group {
				problems = append(problems, fmt.Sprintf("%s has group %s, want %s", a.Name, a.Group, p.Group))
			}
		}
		if len(meta) > 0 {
			facts = append(facts, a.Name+": "+strings.Join(meta, ", "))
		}
	}
	if len(problems) > 0 {
		return failed(want, strings.Join(append(problems, facts...), "\n"), "%s", strings.Join(problems, "; "))
	}
	actual := strings.Join(facts, "\n")
	if len(arts) == 0 {
		return passed(want, "no artifact matches", "no artifact matches %s", p.Path)
	}
	if found != "" {
		return passed(want, actual, "%s: %s; found at %s", describeFiles(p.Path, names), want, found)
	}
	return passed(want, actual, "%s: %s", describeFiles(p.Path, names), want)
}

func describeFiles(pattern string, names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return fmt.Sprintf("%d artifacts matching %s", len(names), pattern)
}

// clip trims a line for a message and cuts it to 120 bytes.
func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
