package broker

import (
	"net/http"
	"net/http/pprof"
)

// pprofRoutes serves Go's profiles when -pprof is set, for benchmarking
// (docs/BENCHMARKS.md). Off by default: profiles reveal internals and cost
// CPU, so they belong on a loopback HTTP address only.
func (b *Broker) pprofRoutes(mux *http.ServeMux) {
	if !b.cfg.Pprof {
		return
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
