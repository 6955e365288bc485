package broker

import (
	"testing"

	"github.com/msgrhq/msgr/metrics"
)

// BenchmarkMeteredPublishCount is what metrics add to each publish of the
// chat core: read the event type at the start of the payload, count it.
// go test -run '^$' -bench BenchmarkMetered -benchmem ./broker
func BenchmarkMeteredPublishCount(b *testing.B) {
	p := meteredPublisher{m: metrics.New()}
	payload := []byte(`{"v":1,"type":"message","msg":{"conv":"01JDQ3Z4N7ZK8Y1X2W3V4T5S6R","seq":42,"ts":1,"body":{"type":"text","text":"hi"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		p.count(payload)
	}
}
