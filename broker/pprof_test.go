package broker_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
)

// Profiles are served only when enabled.
func TestPprofOnlyWhenEnabled(t *testing.T) {
	client := &http.Client{Timeout: 10 * time.Second}
	for _, enabled := range []bool{false, true} {
		tb := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) { c.Pprof = enabled }))
		resp, err := client.Get("http://" + tb.HTTPAddr + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusNotFound
		if enabled {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			t.Errorf("pprof enabled=%v: status %d, want %d", enabled, resp.StatusCode, want)
		}
	}
}
