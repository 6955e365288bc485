package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage/postgres/pgtest"
)

// BenchmarkEndToEnd measures chat throughput through a whole broker over
// real sockets: pairs of MQTT 3.1.1 clients, each pair a direct
// conversation. A sender publishes a send command at QoS 1 and waits for
// its PUBACK (the message is stored) before sending the next; the receiver
// gets the message event on its inbox. Each iteration is one message, given
// to whichever sender is free, so there are at most pairs sends in flight.
//
// Reported: msgs/s, messages delivered to receivers per second of wall time
// (from the first publish until the last delivery); p50-ms and p99-ms, the
// publish-to-PUBACK latency; on PostgreSQL also msgs/commit, how many
// messages the group-committing writer stored per transaction.
// Run it without -race: ./scripts/bench.sh ./broker
func BenchmarkEndToEnd(b *testing.B) {
	stores := []struct {
		name        string
		databaseURL func(b testing.TB) string // "" selects the embedded SQLite store
	}{
		{"sqlite", func(testing.TB) string { return "" }},
		{"postgres", pgtest.FreshSchema},
	}
	for _, st := range stores {
		for _, pairs := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("store=%s/pairs=%d", st.name, pairs), func(b *testing.B) {
				benchPairs(b, pairs, st.databaseURL(b))
			})
		}
	}
}

func benchPairs(b *testing.B, pairs int, databaseURL string, extra ...brokertest.Option) {
	opts := append([]brokertest.Option(nil), extra...)
	if databaseURL != "" {
		opts = append(opts, withDatabase(databaseURL))
	}
	tb := brokertest.Start(b, opts...)
	ctx := context.Background()
	var delivered atomic.Int64
	progress := make(chan struct{}, 1)
	senders := make([]*benchSender, pairs)
	for i := range senders {
		from, to := fmt.Sprintf("s%03d", i), fmt.Sprintf("r%03d", i)
		users(b, tb, from, to)
		conv, _, err := tb.Store().DirectConversation(ctx, from, to, ulid.Make().String(), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		// The receiver counts the message events on its inbox.
		dialBench(b, tb, to, func(_ paho.Client, m paho.Message) {
			var ev protocol.Event
			if err := json.Unmarshal(m.Payload(), &ev); err != nil {
				b.Errorf("%s: undecodable event %s (%v)", to, m.Payload(), err)
				return
			}
			if ev.Type != protocol.EvMessage {
				return // presence of the sender, receipts
			}
			delivered.Add(1)
			select {
			case progress <- struct{}{}:
			default:
			}
		}, protocol.InboxTopic(to))
		// The sender subscribes like a chat device does (it gets its
		// own "sent" and "message" events too) and ignores what comes.
		c := dialBench(b, tb, from, func(paho.Client, paho.Message) {},
			protocol.InboxTopic(from), protocol.DeviceTopic(from, "dev"))
		senders[i] = &benchSender{user: from, conv: conv.ID, c: c}
	}

	cpu0 := processCPU(b)
	sent, elapsed := driveSenders(b, senders, &delivered, progress)
	// CPU of this process (broker and clients; not PostgreSQL) per message:
	// less sensitive than msgs/s to other load on a shared machine.
	b.ReportMetric(float64((processCPU(b)-cpu0)/time.Microsecond)/float64(sent), "cpu-us/msg")

	lat := sendLatencies(senders)
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(quantileMS(lat, 0.50), "p50-ms")
	b.ReportMetric(quantileMS(lat, 0.99), "p99-ms")
	if databaseURL != "" {
		b.ReportMetric(messagesPerCommit(b, databaseURL), "msgs/commit")
	}
}

// messagesPerCommit is the average number of messages per transaction that
// stored any: rows inserted by one transaction share its id, xmin.
func messagesPerCommit(b *testing.B, databaseURL string) float64 {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var msgs, commits float64
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT xmin::text) FROM messages").Scan(&msgs, &commits); err != nil {
		b.Fatal(err)
	}
	return msgs / commits
}

// benchSender sends one message per unit of work and records each
// publish-to-PUBACK latency. With stamp, the text is the send time, so
// that the receiver can measure delivery latency.
type benchSender struct {
	user      string
	conv      string
	c         paho.Client
	stamp     bool
	latencies []time.Duration
}

func (s *benchSender) run(b *testing.B, work <-chan struct{}) {
	topic := protocol.CommandTopic(s.user, protocol.OpSend)
	n := 0
	for range work {
		n++
		t0 := time.Now()
		body := "Are we still on for lunch tomorrow? I can book the place near the office."
		if s.stamp {
			body = fmt.Sprintf("t=%d", t0.UnixNano())
		}
		payload, err := json.Marshal(protocol.Request{V: protocol.Version, Conv: s.conv, CMID: fmt.Sprintf("m%d", n), Body: text(body)})
		if err != nil {
			b.Error(err)
			continue
		}
		tok := s.c.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			// Keep taking work so the benchmark loop does not block; the
			// missing delivery fails the benchmark.
			b.Errorf("%s: no PUBACK for message %d: %v", s.user, n, tok.Error())
			continue
		}
		s.latencies = append(s.latencies, time.Since(t0))
	}
}

// driveSenders hands b's iterations to the senders as units of work and
// waits until every message sent was delivered (delivered counts them,
// progress signals each); it returns how many were sent and how long from
// the first send to the last delivery.
func driveSenders(b *testing.B, senders []*benchSender, delivered *atomic.Int64, progress <-chan struct{}) (int, time.Duration) {
	b.Helper()
	work := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() { s.run(b, work) })
	}
	start := time.Now()
	sent := 0
	for b.Loop() {
		work <- struct{}{}
		sent++
	}
	close(work)
	wg.Wait()
	deadline := time.After(time.Minute)
	for delivered.Load() < int64(sent) {
		select {
		case <-progress:
		case <-deadline:
			b.Fatalf("%d of %d messages delivered after a minute", delivered.Load(), sent)
		}
	}
	return sent, time.Since(start)
}

// sendLatencies are all senders' publish-to-PUBACK latencies.
func sendLatencies(senders []*benchSender) []time.Duration {
	var lat []time.Duration
	for _, s := range senders {
		lat = append(lat, s.latencies...)
	}
	return lat
}

// quantileMS is the q quantile of ds in milliseconds (0 for none); it
// sorts ds.
func quantileMS(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[int(q*float64(len(ds)-1))]) / float64(time.Millisecond)
}

// dialBench connects user/dev (password "pw-USER") and subscribes to
// filters at QoS 1 with handler.
func dialBench(b *testing.B, tb *brokertest.Broker, user string, handler paho.MessageHandler, filters ...string) paho.Client {
	b.Helper()
	c := paho.NewClient(paho.NewClientOptions().
		AddBroker("tcp://" + tb.MQTTAddr).
		SetClientID(user + "/dev").
		SetUsername(user).
		SetPassword("pw-" + user).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectTimeout(waitFor))
	if tok := c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		b.Fatalf("connect %s: %v", user, tok.Error())
	}
	b.Cleanup(func() { c.Disconnect(0) })
	subs := make(map[string]byte)
	for _, f := range filters {
		subs[f] = 1
	}
	if tok := c.SubscribeMultiple(subs, handler); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		b.Fatalf("subscribe %s: %v", user, tok.Error())
	}
	return c
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
