package htmlreport_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/agent/evidence/htmlreport"
	"github.com/hardtrail/hardtrail/agent/evidence/view/viewtest"
	"github.com/hardtrail/hardtrail/agent/store"
)

func sampleSource() htmlreport.Source {
	return htmlreport.Source{
		Index: func(context.Context) ([]htmlreport.Entry, error) {
			ev := viewtest.Sample()
			return []htmlreport.Entry{{ID: ev.Incident, Status: ev.Status, Targets: []string{"fw1", "web1"}, AsOf: ev.AsOf}}, nil
		},
		Page: func(_ context.Context, id string) ([]byte, error) {
			if id != "INC-2026-0042" {
				return nil, store.NotFoundf("unknown incident %s", id)
			}
			return htmlreport.Render(viewtest.Sample(), htmlreport.Options{})
		},
	}
}

func TestServer(t *testing.T) {
	srv := httptest.NewServer(htmlreport.Handler("/incidents/", sampleSource(), slog.New(slog.DiscardHandler)))
	defer srv.Close()
	get := func(method, path string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	code, h, body := get("GET", "/incidents/")
	if code != 200 || !strings.Contains(body, `<a href="INC-2026-0042">INC-2026-0042</a>`) || h.Get("Content-Security-Policy") != htmlreport.CSP {
		t.Errorf("index: %d %v\n%s", code, h, body)
	}
	code, _, body = get("GET", "/incidents/INC-2026-0042")
	if code != 200 || !strings.Contains(body, `id="status">regressed<`) {
		t.Errorf("page: %d\n%.300s", code, body)
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/incidents/INC-9", 404},
		{"GET", "/incidents/..%2f..%2fetc", 404},
		{"GET", "/incidents/a/b", 404},
		{"POST", "/incidents/INC-2026-0042", 405},
		{"DELETE", "/incidents/", 405},
	} {
		if code, _, _ := get(tc.method, tc.path); code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, code, tc.want)
		}
	}
}
