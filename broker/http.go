package broker

import (
	"context"
	"net/http"
	"time"
)

func (b *Broker) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", b.ready)
	b.userRoutes(mux)  // userapi.go
	b.adminRoutes(mux) // adminapi.go
	b.pprofRoutes(mux) // pprof.go
	b.mediaRoutes(mux) // media.go
	if b.metrics != nil {
		mux.Handle("GET /metrics", b.metrics.Handler())
	}
	return withRequestID(mux, b.log)
}

// ready reports whether this node can serve chat and media: its store and
// its blob store answer.
func (b *Broker) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := b.store.Ping(ctx); err != nil {
		b.log.Warn("readyz: store unavailable", "error", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("store unavailable\n"))
		return
	}
	if b.media != nil {
		if err := b.media.Ping(ctx); err != nil {
			b.log.Warn("readyz: media storage unavailable", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("media storage unavailable\n"))
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}
