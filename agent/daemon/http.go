package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/hardtrail/hardtrail/internal/buildinfo"
)

// Handler serves /metrics from reg (always 200: a gathering error leaves out what failed and
// is logged), /healthz (liveness: 200 while the process serves) and a landing page at /.
func Handler(reg prometheus.Gatherer, log *slog.Logger) (http.Handler, error) {
	return HandlerWith(reg, log, nil)
}

// IncidentsPath is where the agent serves the incident pages.
const IncidentsPath = "/incidents/"

// HandlerWith is Handler with the incident pages (read-only) at IncidentsPath when incidents
// is not nil. Serve puts TLS and basic auth in front of every path alike.
func HandlerWith(reg prometheus.Gatherer, log *slog.Logger, incidents http.Handler) (http.Handler, error) {
	mux := http.NewServeMux()
	links := []web.LandingLinks{
		{Address: "/metrics", Text: "Metrics"},
		{Address: "/healthz", Text: "Health"},
	}
	if incidents != nil {
		mux.Handle(IncidentsPath, incidents)
		links = append(links, web.LandingLinks{Address: IncidentsPath, Text: "Incidents"})
	}
	var metrics http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slogErrorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape that cannot be answered in time is answered by the next one.
		Timeout: 10 * time.Second,
	})
	if r, ok := reg.(*Registry); ok {
		metrics = r.serveMetrics(metrics, log)
	}
	mux.Handle("/metrics", metrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "hardtrail agent",
		Description: "Remediation status of hardened configuration, as Prometheus metrics",
		Version:     buildinfo.String(),
		RoutePrefix: "/",
		Links:       links,
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("/", landing)
	return mux, nil
}

type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Println(v ...any) { l.log.Error("serving metrics", "err", fmt.Sprint(v...)) }

// Serve serves h on l until ctx ends, then shuts the server down within a few seconds.
// webConfig, when not empty, is an exporter-toolkit web configuration file (TLS, basic auth),
// read again on every connection.
func Serve(ctx context.Context, l net.Listener, h http.Handler, webConfig string, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	addr := l.Addr().String()
	systemd := false
	flags := &web.FlagConfig{WebListenAddresses: &[]string{addr}, WebSystemdSocket: &systemd, WebConfigFile: &webConfig}
	done := make(chan error, 1)
	go func() { done <- web.Serve(l, srv, flags, log) }()
	select {
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serving on %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-done
	return err
}

// CheckWebConfig validates an exporter-toolkit web configuration file.
func CheckWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("web config %s: %w", path, err)
	}
	return nil
}
