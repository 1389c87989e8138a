package main

import (
	"context"
	"errors"
	"sort"

	"github.com/hardtrail/hardtrail/agent/daemon"
	"github.com/hardtrail/hardtrail/agent/evidence"
	"github.com/hardtrail/hardtrail/agent/evidence/htmlreport"
	"github.com/hardtrail/hardtrail/agent/store"
)

// incidentPages gives the agent's incident pages their content: the index from the agent's
// state (each incident's status per target, as its metrics show), and each incident's page:
// the report.html of the evidence bundle it would export now.
func incidentPages(st *store.Store, d *daemon.Daemon) htmlreport.Source {
	return htmlreport.Source{
		Index: func(ctx context.Context) ([]htmlreport.Entry, error) {
			ids, err := st.Incidents(ctx)
			if err != nil {
				return nil, err
			}
			byID := map[string]*htmlreport.Entry{}
			var out []htmlreport.Entry
			for _, id := range ids {
				out = append(out, htmlreport.Entry{ID: id, Status: "unknown"})
			}
			for i := range out {
				byID[out[i].ID] = &out[i]
			}
			rank := map[string]int{"verified": 0, "remediated": 1, "open": 2, "regressed": 3}
			for _, s := range d.State().Incidents {
				e, ok := byID[s.Incident]
				if !ok {
					continue
				}
				e.Targets = append(e.Targets, s.Target)
				if e.Status == "unknown" || rank[string(s.Status)] > rank[e.Status] {
					e.Status = string(s.Status)
				}
			}
			for i := range out {
				sort.Strings(out[i].Targets)
				links, err := st.Links(ctx, out[i].ID)
				if err != nil {
					return nil, err
				}
				for _, l := range links {
					if l.At.After(out[i].AsOf) {
						out[i].AsOf = l.At
					}
				}
			}
			return out, nil
		},
		Page: func(ctx context.Context, id string) ([]byte, error) {
			b, err := evidence.Build(ctx, st, id, d.Rules())
			if errors.Is(err, evidence.ErrNoAfter) {
				return nil, store.NotFoundf("incident %s has no evidence yet: %v", id, err)
			}
			if err != nil {
				return nil, err
			}
			page, _ := b.File(evidence.HTMLReportName)
			return page, nil
		},
	}
}
