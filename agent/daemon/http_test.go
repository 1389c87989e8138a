package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestIncidentsBehindAuth checks that the web configuration's basic auth guards the incident
// pages as it guards /metrics: exporter-toolkit wraps the whole handler.
func TestIncidentsBehindAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("basic_auth_users:\n  auditor: %s\n", hash)), 0o600); err != nil {
		t.Fatal(err)
	}
	pages := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "incident pages "+r.URL.Path) })
	st := sampleState()
	h, err := HandlerWith(NewRegistry(func() *State { return st }), slog.New(slog.DiscardHandler), pages)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h, cfg, slog.New(slog.DiscardHandler)) }()
	base := "http://" + l.Addr().String()
	get := func(path, user, pass string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		var resp *http.Response
		for i := 0; i < 50; i++ {
			if resp, err = http.DefaultClient.Do(req); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/metrics", "/incidents/", "/incidents/INC-1"} {
		if code, _ := get(p, "", ""); code != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, want 401", p, code)
		}
		if code, _ := get(p, "auditor", "wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong password: %d, want 401", p, code)
		}
	}
	if code, body := get("/incidents/INC-1", "auditor", "s3cret"); code != 200 || body != "incident pages /incidents/INC-1" {
		t.Errorf("with credentials: %d %q", code, body)
	}
	if code, _ := get("/metrics", "auditor", "s3cret"); code != 200 {
		t.Errorf("/metrics with credentials: %d", code)
	}
}
