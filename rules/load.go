package rules

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hardtrail/hardtrail/internal/tomlx"
)

// LoadError is a problem in a rule file. It names the file, the position where known, the
// rule (or the rule a waiver is for), and the key.
type LoadError struct {
	File   string
	Line   int // 1-based; 0 when unknown
	Col    int
	Rule   string // rule ID, when known
	Waiver bool   // the problem is in a [[waiver]] for Rule
	Key    string // key path such as rule.sshd.matches, when known
	Msg    string
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, max(e.Col, 1))
	}
	b.WriteString(": ")
	switch {
	case e.Waiver && e.Rule != "":
		fmt.Fprintf(&b, "waiver for rule %q: ", e.Rule)
	case e.Waiver:
		b.WriteString("waiver: ")
	case e.Rule != "":
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

var (
	idRE       = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,63}$`) })
	osRE       = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(:[A-Za-z0-9._~+-]+)?$`) })
	idLineRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^\s*id\s*=\s*["']([^"'\n]*)["']`) })
	ruleLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^\s*rule\s*=\s*["']([^"'\n]*)["']`) })
)

// Load reads rule files, and directories holding *.toml rule files (searched recursively,
// skipping hidden directories), into one Set. Rule IDs must be unique across all of them
// and every waiver must name a rule of the set. All problems found are returned together,
// each a *LoadError.
func Load(paths ...string) (*Set, error) {
	srcs := make([]Source, len(paths))
	for i, p := range paths {
		srcs[i] = Source{Path: p}
	}
	return LoadSources(srcs...)
}

// LoadFS is Load over a file system, such as an embedded one; paths are slash-separated
// paths inside fsys, and none means the whole of it.
func LoadFS(fsys fs.FS, paths ...string) (*Set, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	srcs := make([]Source, len(paths))
	for i, p := range paths {
		srcs[i] = Source{FS: fsys, Path: p}
	}
	return LoadSources(srcs...)
}

// Source is a rule file, or a directory of *.toml rule files, to load: on disk, or inside a
// file system such as the shipped packs.
type Source struct {
	// FS holds Path; nil means the local file system.
	FS fs.FS
	// Path is a file or a directory: an OS path on disk, a slash-separated path inside FS
	// ("." for the whole of it). Messages name files by it.
	Path string
}

// LoadSources reads every source's files first and checks them as one set: rule IDs unique
// across all sources, and every waiver naming a rule of any source. A file holding only
// waivers can therefore be given beside the packs whose rules it waives, in any order.
// All problems found are returned together, each a *LoadError naming its file, line and
// column.
func LoadSources(srcs ...Source) (*Set, error) {
	files, err := readSources(srcs)
	if err != nil {
		return nil, err
	}
	return build(files)
}

// CheckPack reports the problems LoadSources would find in the sources, except waivers that
// name a rule the sources do not define: it decides whether a pack is fit to install, where
// a pack may hold waivers for rules that come from elsewhere (such as the shipped packs);
// those are checked when the pack is loaded with the rest. It returns the pack as a set (its
// rules and the waivers that name them) and the number of waivers for rules from elsewhere.
func CheckPack(srcs ...Source) (*Set, int, error) {
	files, err := readSources(srcs)
	if err != nil {
		return nil, 0, err
	}
	return checkPack(files)
}

func checkPack(files []ruleFile) (*Set, int, error) {
	rules, waivers, errs := parseAll(files)
	ids := make(map[string]bool, len(rules))
	for _, r := range rules {
		ids[r.ID] = true
	}
	var own []*Waiver
	foreign := 0
	for _, w := range waivers {
		if ids[w.Rule] {
			own = append(own, w)
		} else {
			foreign++
		}
	}
	s, err := assemble(rules, own)
	errs = append(errs, flatten(err)...)
	if len(errs) > 0 {
		return nil, 0, errors.Join(errs...)
	}
	s.files = fileNames(files)
	s.texts = fileTexts(files)
	return s, foreign, nil
}

func readSources(srcs []Source) ([]ruleFile, error) {
	r := &reader{lim: CurrentLimits()}
	var files []ruleFile
	for _, src := range srcs {
		fsFiles, err := src.read(r)
		if err != nil {
			return nil, err
		}
		files = append(files, fsFiles...)
	}
	return files, nil
}

// reader reads rule files within the limits, counting across the sources of one load.
type reader struct {
	lim   Limits
	files int
	bytes int64
}

// file reads one rule file named name through open, refusing it before reading when it is
// too large.
func (r *reader) file(name string, open func() (fs.File, error)) (ruleFile, error) {
	if r.files++; r.files > r.lim.Files {
		return ruleFile{}, &LimitError{Where: name, What: "rule files in one load", Got: int64(r.files), Limit: int64(r.lim.Files), Env: EnvMaxFiles}
	}
	f, err := open()
	if err != nil {
		return ruleFile{}, fmt.Errorf("rules: %w", err)
	}
	defer f.Close()
	tooBig := func(n int64) error {
		return &LimitError{Where: name, What: "bytes in one rule file", Got: n, Limit: r.lim.FileBytes, Env: EnvMaxFileBytes}
	}
	if st, err := f.Stat(); err == nil && st.Size() > r.lim.FileBytes {
		return ruleFile{}, tooBig(st.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, r.lim.FileBytes+1))
	if err != nil {
		return ruleFile{}, fmt.Errorf("rules: %s: %w", name, err)
	}
	if int64(len(data)) > r.lim.FileBytes {
		return ruleFile{}, tooBig(int64(len(data)))
	}
	if r.bytes += int64(len(data)); r.bytes > r.lim.TotalBytes {
		return ruleFile{}, &LimitError{Where: name, What: "bytes of rule files in one load", Got: r.bytes, Limit: r.lim.TotalBytes, Env: EnvMaxBytes}
	}
	return ruleFile{name: name, data: data}, nil
}

// read returns the rule files of one source.
func (src Source) read(r *reader) ([]ruleFile, error) {
	fsys, root := src.FS, src.Path
	name := func(rel string) string { return rel }
	if fsys == nil {
		st, err := os.Stat(src.Path)
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		if !st.IsDir() {
			f, err := r.file(src.Path, func() (fs.File, error) { return os.Open(src.Path) })
			if err != nil {
				return nil, err
			}
			return []ruleFile{f}, nil
		}
		fsys, root = os.DirFS(src.Path), "."
		name = func(rel string) string { return filepath.Join(src.Path, filepath.FromSlash(rel)) }
	}
	st, err := fs.Stat(fsys, root)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if !st.IsDir() {
		f, err := r.file(root, func() (fs.File, error) { return fsys.Open(root) })
		if err != nil {
			return nil, err
		}
		return []ruleFile{f}, nil
	}
	files, err := readTree(r, fsys, root, name)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("rules: %s: no rule files (*.toml) in the directory", src.Path)
	}
	return files, nil
}

// Merge combines sets into one, with the same checks as Load: unique rule IDs, and every
// waiver naming a rule of the combined set.
func Merge(sets ...*Set) (*Set, error) {
	var rules []*Rule
	var waivers []*Waiver
	var files []string
	for _, s := range sets {
		rules = append(rules, s.rules...)
		waivers = append(waivers, s.waivers...)
		files = append(files, s.files...)
	}
	s, err := assemble(rules, waivers)
	if err != nil {
		return nil, err
	}
	s.files = files
	return s, nil
}

type ruleFile struct {
	name string
	data []byte
}

func readTree(r *reader, fsys fs.FS, root string, name func(string) string) ([]ruleFile, error) {
	var files []ruleFile
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".toml") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		f, err := r.file(name(p), func() (fs.File, error) { return fsys.Open(p) })
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	var le *LimitError
	if errors.As(err, &le) {
		return nil, le
	}
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return files, nil // WalkDir visits in lexical order
}

// build parses every file and assembles the set, reporting all problems found.
func build(files []ruleFile) (*Set, error) {
	rules, waivers, errs := parseAll(files)
	s, err := assemble(rules, waivers)
	errs = append(errs, flatten(err)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.files = fileNames(files)
	s.texts = fileTexts(files)
	return s, nil
}

// LoadFiles builds a set from rule files held in memory, such as those a store or a bundle
// kept (Set.Texts), with the checks of LoadSources.
func LoadFiles(files ...File) (*Set, error) {
	rfs := make([]ruleFile, len(files))
	for i, f := range files {
		rfs[i] = ruleFile{name: f.Name, data: f.Data}
	}
	return build(rfs)
}

// CheckFiles is CheckPack over rule files held in memory: waivers naming rules the files do
// not define are left out rather than refused.
func CheckFiles(files ...File) (*Set, error) {
	rfs := make([]ruleFile, len(files))
	for i, f := range files {
		rfs[i] = ruleFile{name: f.Name, data: f.Data}
	}
	s, _, err := checkPack(rfs)
	return s, err
}

func fileTexts(files []ruleFile) []packedFile {
	out := make([]packedFile, len(files))
	for i, f := range files {
		out[i] = pack(f.name, f.data)
	}
	return out
}

// packedFile is a rule file's text as a set keeps it: deflated, since it is needed only when
// the set is stored, and rule files compress several times over.
type packedFile struct {
	name     string
	deflated []byte
	size     int
}

func pack(name string, data []byte) packedFile {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestSpeed) // a valid level never fails
	fw.Write(data)
	fw.Close()
	return packedFile{name: name, deflated: bytes.Clone(b.Bytes()), size: len(data)}
}

func (f packedFile) unpack() []byte {
	data := make([]byte, f.size)
	if _, err := io.ReadFull(flate.NewReader(bytes.NewReader(f.deflated)), data); err != nil {
		// The set deflated these bytes itself.
		panic("rules: inflating a rule file's text: " + err.Error())
	}
	return data
}

// parseAll parses every file, returning what is valid and every problem found. A file that
// would take the load past the limit on rules is refused before it is decoded.
func parseAll(files []ruleFile) ([]*Rule, []*Waiver, []error) {
	var errs []error
	var rules []*Rule
	var waivers []*Waiver
	lim := CurrentLimits()
	for _, f := range files {
		// Every [[rule]] or [[waiver]] takes a header line: count them before decoding.
		tables := int64(len(rules) + len(waivers) + countTables(f.data))
		if tables > int64(lim.Rules) {
			return nil, nil, append(errs, &LimitError{Where: f.name, What: "rules and waivers in one load", Got: tables, Limit: int64(lim.Rules), Env: EnvMaxRules})
		}
		rs, ws, err := parseFile(f.name, f.data)
		if n := int64(len(rules) + len(waivers) + len(rs) + len(ws)); n > int64(lim.Rules) {
			return nil, nil, append(errs, &LimitError{Where: f.name, What: "rules and waivers in one load", Got: n, Limit: int64(lim.Rules), Env: EnvMaxRules})
		}
		errs = append(errs, flatten(err)...)
		rules = append(rules, rs...)
		waivers = append(waivers, ws...)
	}
	return rules, waivers, errs
}

// countTables counts the lines that open an array of tables, such as [[rule]].
func countTables(data []byte) int {
	n := 0
	for line := range bytes.Lines(data) {
		if bytes.HasPrefix(bytes.TrimLeft(line, " \t"), []byte("[[")) {
			n++
		}
	}
	return n
}

func fileNames(files []ruleFile) []string {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	return names
}

// assemble checks what spans files (duplicate IDs, waivers for unknown rules) and builds
// the set.
func assemble(rules []*Rule, waivers []*Waiver) (*Set, error) {
	var errs []error
	s := &Set{byID: make(map[string]*Rule, len(rules))}
	for _, r := range rules {
		if first, dup := s.byID[r.ID]; dup {
			file, line := splitSource(r.Source)
			errs = append(errs, &LoadError{File: file, Line: line, Col: 1, Rule: r.ID, Key: "rule.id",
				Msg: "duplicate rule ID (first defined at " + first.Source + ")"})
			continue
		}
		s.byID[r.ID] = r
		s.rules = append(s.rules, r)
	}
	for _, w := range waivers {
		if _, ok := s.byID[w.Rule]; !ok {
			file, line := splitSource(w.Source)
			errs = append(errs, &LoadError{File: file, Line: line, Col: 1, Rule: w.Rule, Waiver: true, Key: "waiver.rule",
				Msg: "no rule with this ID is loaded (load the waiver together with the rules it waives)"})
			continue
		}
		s.waivers = append(s.waivers, w)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.digest = digest(s)
	return s, nil
}

func splitSource(src string) (string, int) {
	i := strings.LastIndexByte(src, ':')
	if i < 0 {
		return src, 0
	}
	var n int
	if _, err := fmt.Sscanf(src[i+1:], "%d", &n); err != nil {
		return src, 0
	}
	return src[:i], n
}

// parseFile decodes and validates one rule file, reporting every problem it finds: syntax
// errors end the file's reading, while values of the wrong type and unknown keys are each
// reported and left out, and the rest is validated as usual.
func parseFile(name string, data []byte) ([]*Rule, []*Waiver, error) {
	src := string(data)
	var tree map[string]any
	if _, err := toml.Decode(src, &tree); err != nil {
		// A syntax error: tomlx positions it.
		return nil, nil, decodeError(name, src, tomlx.Decode(name, data, &tree))
	}
	ids := map[string][]string{"rule": tableIDs(tree["rule"], "id"), "waiver": tableIDs(tree["waiver"], "rule")}
	probs := typecheck(tree, fileSchema().file)
	var errs []error
	skip := map[string]map[string]bool{} // "rule.2" -> keys not to report again, such as rule.severity
	for _, p := range probs {
		errs = append(errs, typeError(name, src, ids, p))
		if len(p.key) >= 2 {
			el := p.key[0] + "." + p.key[1]
			if skip[el] == nil {
				skip[el] = map[string]bool{}
			}
			// What the value's absence makes the validation say again: the key itself is
			// missing now, and its table (a probe's, or for an unknown key the rule's) may
			// lack a condition or a probe.
			path := stripIndexes(p.key)
			skip[el][strings.Join(path, ".")] = true
			if p.unknown || len(path) >= 3 {
				skip[el][strings.Join(stripIndexes(p.key[:len(p.key)-1]), ".")] = true
			}
		}
	}
	doc := reflect.New(fileSchema().file)
	if len(probs) == 0 {
		if err := tomlx.Decode(name, data, doc.Interface()); err != nil {
			return nil, nil, decodeError(name, src, err)
		}
	} else {
		// Decode what is left: the document without the keys reported.
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(tree); err != nil {
			return nil, nil, errors.Join(errs...)
		}
		if _, err := toml.Decode(buf.String(), doc.Interface()); err != nil {
			return nil, nil, errors.Join(errs...)
		}
	}
	internStrings(doc.Elem())
	ruleBlocks, waiverBlocks := blocks(src, "rule"), blocks(src, "waiver")
	decoded := fileSchema().rulesOf(doc.Elem())
	if len(ruleBlocks) != len(decoded) {
		ruleBlocks = nil // written without [[rule]] headers: positions unknown
	}
	var rules []*Rule
	for i, d := range decoded {
		var b block
		if ruleBlocks != nil {
			b = ruleBlocks[i]
		}
		r, rerrs := newRule(name, src, b, d, skip["rule."+strconv.Itoa(i)])
		errs = append(errs, rerrs...)
		if r != nil {
			rules = append(rules, r)
		}
	}
	wdocs := fileSchema().waiversOf(doc.Elem())
	if len(waiverBlocks) != len(wdocs) {
		waiverBlocks = nil
	}
	var waivers []*Waiver
	for i, wd := range wdocs {
		var b block
		if waiverBlocks != nil {
			b = waiverBlocks[i]
		}
		w, werrs := newWaiver(name, src, b, wd, skip["waiver."+strconv.Itoa(i)])
		errs = append(errs, werrs...)
		if w != nil {
			waivers = append(waivers, w)
		}
	}
	if len(probs) > 0 {
		// A rule with a bad value is reported, never loaded.
		return nil, nil, errors.Join(sortedByLine(errs)...)
	}
	return rules, waivers, errors.Join(sortedByLine(errs)...)
}

// tableIDs returns the value of key (when a string) of each table of an array of tables.
func tableIDs(v any, key string) []string {
	list, _ := v.([]map[string]any)
	ids := make([]string, len(list))
	for i, m := range list {
		ids[i], _ = m[key].(string)
	}
	return ids
}

// typeError positions a type problem and names the rule or waiver it is in.
func typeError(name, src string, ids map[string][]string, p typeProblem) error {
	te := tomlx.Errorf(name, []byte(src), p.key, "%s", p.msg)
	e := &LoadError{File: name, Line: te.Line, Col: te.Col, Key: te.Key, Msg: p.msg}
	if len(p.key) >= 2 {
		if list, ok := ids[p.key[0]]; ok {
			if i, err := strconv.Atoi(p.key[1]); err == nil && i < len(list) {
				e.Rule, e.Waiver = list[i], p.key[0] == "waiver"
			}
		}
	}
	if p.unknown {
		e.Key = strings.Join(stripIndexes(p.key), ".")
		e.Msg = "unknown key (check its spelling and the table it is in)"
		if len(p.key) == 3 && p.key[0] == "rule" {
			e.Msg = "unknown key (a rule has the keys " + headKeys() + ", and one probe table: " + probeTables() + ")"
		}
	}
	if ls := strings.Split(src, "\n"); e.Line > 0 && e.Line <= len(ls) {
		l := ls[e.Line-1]
		switch eq := strings.IndexByte(l, '='); {
		case strings.HasPrefix(strings.TrimSpace(l), "["):
			e.Col = 1
		case !p.unknown && eq >= 0:
			// A value of the wrong type: point at the value.
			e.Col = eq + 2 + len(l[eq+1:]) - len(strings.TrimLeft(l[eq+1:], " \t"))
		}
	}
	return e
}

func stripIndexes(key []string) []string {
	var out []string
	for _, k := range key {
		if _, err := strconv.Atoi(k); err != nil {
			out = append(out, k)
		}
	}
	return out
}

// sortedByLine orders a file's problems by position, keeping the order of those on one line.
func sortedByLine(errs []error) []error {
	line := func(e error) int {
		var le *LoadError
		if errors.As(e, &le) {
			return le.Line
		}
		return 0
	}
	sort.SliceStable(errs, func(i, j int) bool { return line(errs[i]) < line(errs[j]) })
	return errs
}

// decodeError turns a tomlx error into an *Error naming the rule around its line.
func decodeError(name, src string, err error) error {
	var te *tomlx.Error
	if !errors.As(err, &te) {
		return &LoadError{File: name, Msg: err.Error()}
	}
	e := &LoadError{File: te.File, Line: te.Line, Col: te.Col, Key: te.Key, Msg: te.Msg}
	for _, b := range blocks(src, "rule") {
		if te.Line >= b.start && te.Line < b.end {
			e.Rule = b.id
		}
	}
	for _, b := range blocks(src, "waiver") {
		if te.Line >= b.start && te.Line < b.end {
			e.Rule, e.Waiver = b.id, true
		}
	}
	// An unknown table right under a rule is most likely a misspelt probe.
	if strings.HasPrefix(e.Msg, "unknown key") && strings.Count(e.Key, ".") == 1 && strings.HasPrefix(e.Key, "rule.") {
		e.Msg = "unknown key (a rule has the keys " + headKeys() + ", and one probe table: " + probeTables() + ")"
	}
	if ls := strings.Split(src, "\n"); e.Line > 0 && e.Line <= len(ls) && strings.HasPrefix(strings.TrimSpace(ls[e.Line-1]), "[") {
		e.Col = 1
	}
	return e
}

// block is the lines [start, end) of one [[rule]] or [[waiver]] table, 1-based.
type block struct {
	start, end int
	text       string // the block's source
	id         string // the rule ID it names, when written as a plain string
}

// blocks finds the [[name]] tables of src in order. A block runs to the next array-table
// header of any name.
func blocks(src, name string) []block {
	lines := strings.Split(src, "\n")
	var heads []int // 0-based line of each [[...]] header
	var names []string
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if !strings.HasPrefix(t, "[[") {
			continue
		}
		j := strings.Index(t, "]]")
		if j < 0 {
			continue
		}
		heads = append(heads, i)
		names = append(names, strings.TrimSpace(t[2:j]))
	}
	var out []block
	for k, h := range heads {
		if names[k] != name {
			continue
		}
		end := len(lines)
		if k+1 < len(heads) {
			end = heads[k+1]
		}
		b := block{start: h + 1, end: end + 1, text: strings.Join(lines[h:end], "\n")}
		re := idLineRE()
		if name == "waiver" {
			re = ruleLineRE()
		}
		if m := re.FindStringSubmatch(b.text); m != nil {
			b.id = m[1]
		}
		out = append(out, b)
	}
	return out
}

// locate finds key (a dotted path such as rule.sshd.matches) inside the block; it falls
// back to the parent table's header, then to the block's first line.
func (b block) locate(key string) (int, int) {
	if b.start == 0 {
		return 0, 0
	}
	parts := strings.Split(key, ".")
	for n := len(parts); n >= 1; n-- {
		if l, c := tomlx.Locate(b.text, toml.Key(parts[:n])); l > 0 {
			if strings.HasPrefix(strings.TrimSpace(strings.Split(b.text, "\n")[l-1]), "[") {
				c = 1 // a table header, or the header of a table missing the key
			}
			return b.start + l - 1, c
		}
	}
	return b.start, 1
}

// newRule validates one decoded rule.
func newRule(file, src string, b block, d decodedRule, skip map[string]bool) (*Rule, []error) {
	h := d.head
	var errs []error
	bad := func(key, format string, args ...any) {
		if skip[key] {
			return // its value was reported as of the wrong type
		}
		l, c := b.locate(key)
		errs = append(errs, &LoadError{File: file, Line: l, Col: c, Rule: h.ID, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case h.ID == "":
		bad("rule.id", "missing (every rule needs an id)")
	case !idRE().MatchString(h.ID):
		bad("rule.id", "invalid rule ID %q (a letter, then up to 63 letters, digits, '.', '_' or '-')", h.ID)
	}
	if strings.TrimSpace(h.Title) == "" {
		bad("rule.title", "missing (every rule needs a title)")
	}
	switch {
	case h.Severity == "":
		bad("rule.severity", "missing (one of info, low, medium, high, critical)")
	case !Severity(h.Severity).valid():
		bad("rule.severity", "unknown severity %q (one of info, low, medium, high, critical)", h.Severity)
	}
	if len(h.Controls) == 0 {
		bad("rule.controls", "missing (name the controls the rule evidences, such as \"ISO27001:2022 A.8.9\")")
	}
	for _, c := range h.Controls {
		if strings.TrimSpace(c) == "" {
			bad("rule.controls", "empty control")
		}
	}
	for _, inc := range h.Incidents {
		if !idRE().MatchString(inc) {
			bad("rule.incidents", "invalid incident ID %q (a letter, then up to 63 letters, digits, '.', '_' or '-')", inc)
		}
	}
	for _, t := range h.Targets {
		if err := checkGlob(t); err != nil {
			bad("rule.targets", "%v", err)
		}
	}
	for _, o := range h.OS {
		if !osRE().MatchString(o) {
			bad("rule.os", "invalid os %q (an os-release ID such as \"debian\", optionally with a VERSION_ID: \"ubuntu:24.04\")", o)
		}
	}
	switch len(d.probes) {
	case 0:
		bad("rule", "no probe table (add exactly one of %s)", probeTables())
	case 1:
		if err := d.probe.check(); err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				key := "rule." + d.probes[0]
				if fe.key != "" {
					key += "." + fe.key
				}
				bad(key, "%s", fe.msg)
			} else {
				bad("rule."+d.probes[0], "%v", err)
			}
		}
	default:
		bad("rule."+d.probes[1], "more than one probe table ([rule.%s] and [rule.%s]); a rule has exactly one", d.probes[0], d.probes[1])
	}
	if len(errs) > 0 || len(skip) > 0 {
		return nil, errs
	}
	return &Rule{
		ID: h.ID, Title: strings.TrimSpace(h.Title), Severity: Severity(h.Severity), Controls: h.Controls,
		Description: strings.TrimSpace(h.Description), Remediation: strings.TrimSpace(h.Remediation),
		Incidents: h.Incidents, Targets: h.Targets, OS: h.OS,
		Kind: d.probes[0], Source: fmt.Sprintf("%s:%d", file, b.start), probe: d.probe,
	}, nil
}

func checkGlob(g string) error {
	if g == "" {
		return errors.New("empty target glob")
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("invalid target glob %q: %w", g, err)
	}
	return nil
}

// newWaiver validates one decoded waiver.
func newWaiver(file, src string, b block, d waiverDoc, skip map[string]bool) (*Waiver, []error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		if skip[key] {
			return
		}
		l, c := b.locate(key)
		errs = append(errs, &LoadError{File: file, Line: l, Col: c, Rule: d.Rule, Waiver: true, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if d.Rule == "" {
		bad("waiver.rule", "missing (the ID of the rule waived)")
	}
	if len(d.Targets) == 0 {
		bad("waiver.targets", "missing (globs of the targets waived; [\"*\"] for all)")
	}
	for _, t := range d.Targets {
		if err := checkGlob(t); err != nil {
			bad("waiver.targets", "%v", err)
		}
	}
	if strings.TrimSpace(d.Reason) == "" {
		bad("waiver.reason", "missing (why the failure is accepted)")
	}
	if strings.TrimSpace(d.Approver) == "" {
		bad("waiver.approver", "missing (who accepted the risk)")
	}
	if d.Expires == nil {
		bad("waiver.expires", "missing (the date the waiver stops applying, YYYY-MM-DD)")
	}
	if len(errs) > 0 || len(skip) > 0 {
		return nil, errs
	}
	return &Waiver{Rule: d.Rule, Targets: d.Targets, Reason: strings.TrimSpace(d.Reason),
		Approver: strings.TrimSpace(d.Approver), Expires: d.Expires.t, Source: fmt.Sprintf("%s:%d", file, b.start)}, nil
}

// date is a calendar day, written as "YYYY-MM-DD" or as a TOML local date.
type date struct{ t time.Time }

func (d *date) UnmarshalText(b []byte) error {
	s := string(b)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		d.t = t
		return nil
	}
	// A TOML local date arrives as midnight in RFC 3339.
	if t, err := time.Parse(time.RFC3339, s); err == nil && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		d.t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return nil
	}
	return fmt.Errorf("invalid date %q (write it as YYYY-MM-DD)", s)
}

// sortedCopy returns a sorted copy of ss.
func sortedCopy(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}

// flatten lists the errors joined in err, so that a load returns one flat join.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
