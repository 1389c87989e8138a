package htmlreport

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
)

// Entry is one incident of the index.
type Entry struct {
	ID      string
	Status  string
	Targets []string
	AsOf    time.Time
	// Err says why the incident's evidence could not be gathered, when it could not.
	Err string
}

// Source gives the pages their content. Both funcs are called per request, so the pages show
// the store as it is; Page returns the incident's report (as Render writes it), or an error
// matching store.ErrNotFound for an unknown ID.
type Source struct {
	Index func(ctx context.Context) ([]Entry, error)
	Page  func(ctx context.Context, id string) ([]byte, error)
}

// Handler serves the incident pages read-only under prefix (such as "/incidents/"): the
// index at prefix, and each incident's report at prefix+ID.
func Handler(prefix string, src Source, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: GET or HEAD", http.StatusMethodNotAllowed)
			return
		}
		id, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		var page []byte
		var err error
		if id == "" {
			page, err = index(r.Context(), src)
		} else if store.CheckIncidentID(id) != nil {
			http.Error(w, "not an incident ID", http.StatusNotFound)
			return
		} else {
			page, err = src.Page(r.Context(), id)
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case err != nil:
			log.Error("serving incident page", "incident", id, "err", err)
			http.Error(w, "cannot gather the evidence: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
}

var indexPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("index").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{csp}}">
<title>Incidents</title>
<style>
body { font: 14px/1.5 system-ui, "DejaVu Sans", sans-serif; color: #1b1f24; max-width: 1100px; margin: 0 auto; padding: 24px; }
table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #d1d9e0; padding: 4px 8px; text-align: left; }
th { background: #f6f8fa; } .status { padding: 1px 10px; border-radius: 12px; font-weight: 600; border: 1px solid currentColor; }
.s-verified { color: #1a7f37; background: #dafbe1; } .s-remediated { color: #9a6700; background: #fff8c5; }
.s-open { color: #0969da; background: #ddf4ff; } .s-regressed { color: #cf222e; background: #ffebe9; } .err { color: #cf222e; }
</style></head><body>
<h1>Incidents</h1>
{{if .}}<table id="incidents"><tr><th>Incident</th><th>Status</th><th>Targets</th><th>Evidence as of (UTC)</th></tr>
{{range .}}<tr class="incident"><td><a href="{{.ID}}">{{.ID}}</a></td><td>{{if .Err}}<span class="err">{{.Err}}</span>{{else}}<span class="status s-{{.Status}}">{{.Status}}</span>{{end}}</td><td>{{join .Targets ", "}}</td><td>{{stamp .AsOf}}</td></tr>
{{end}}</table>{{else}}<p>No snapshot is tagged with an incident yet.</p>{{end}}
</body></html>
`))
})

func index(ctx context.Context, src Source) ([]byte, error) {
	es, err := src.Index(ctx)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := indexPage().Execute(&b, es); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
