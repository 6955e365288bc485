package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/oklog/ulid/v2"

	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

// BenchmarkClusterForwarding compares delivery within one node with
// delivery forwarded through Redis to another node, in the same run, on
// PostgreSQL:
//
//   - route=single: one node without Redis (the single-node baseline);
//   - route=same-node: two cluster nodes, sender and receiver on n0 (what
//     cluster mode costs when nothing needs forwarding: a Redis lookup per
//     inbox event);
//   - route=cross-node: sender on n0, receiver on n1 (every message event
//     for the receiver is forwarded over Redis pub/sub).
//
// Pairs of MQTT 3.1.1 clients as in BenchmarkEndToEnd; a sender waits for
// its PUBACK before the next send. Reported: msgs/s delivered to
// receivers, ack-p50/p99-ms (publish -> PUBACK) and deliver-p50/p99-ms
// (publish -> message event at the receiver).
// Run: ./scripts/bench.sh ./broker -bench ClusterForwarding -benchtime=5s
func BenchmarkClusterForwarding(b *testing.B) {
	for _, route := range []string{"single", "same-node", "cross-node"} {
		for _, pairs := range []int{10, 100} {
			b.Run(fmt.Sprintf("route=%s/pairs=%d", route, pairs), func(b *testing.B) {
				benchRoute(b, route, pairs)
			})
		}
	}
}

func benchRoute(b *testing.B, route string, pairs int) {
	var sendNode, recvNode *brokertest.Broker
	if route == "single" {
		sendNode = brokertest.Start(b, brokertest.WithPostgres(b))
		recvNode = sendNode
	} else {
		c := brokertest.NewCluster(b)
		n0 := brokertest.Start(b, c.Node("n0"))
		n1 := brokertest.Start(b, c.Node("n1"))
		sendNode, recvNode = n0, n0
		if route == "cross-node" {
			recvNode = n1
		}
	}
	ctx := context.Background()
	var (
		delivered atomic.Int64
		mu        sync.Mutex
		deliver   []time.Duration
	)
	progress := make(chan struct{}, 1)
	senders := make([]*benchSender, pairs)
	for i := range senders {
		from, to := fmt.Sprintf("s%03d", i), fmt.Sprintf("r%03d", i)
		users(b, sendNode, from, to)
		conv, _, err := sendNode.Store().DirectConversation(ctx, from, to, ulid.Make().String(), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		dialBench(b, recvNode, to, func(_ paho.Client, m paho.Message) {
			var ev protocol.Event
			if err := json.Unmarshal(m.Payload(), &ev); err != nil || ev.Type != protocol.EvMessage || ev.Msg == nil {
				return
			}
			var body protocol.Body
			_ = json.Unmarshal(ev.Msg.Body, &body)
			sentAt, err := strconv.ParseInt(strings.TrimPrefix(body.Text, "t="), 10, 64)
			if err != nil {
				return
			}
			d := time.Since(time.Unix(0, sentAt))
			mu.Lock()
			deliver = append(deliver, d)
			mu.Unlock()
			delivered.Add(1)
			select {
			case progress <- struct{}{}:
			default:
			}
		}, protocol.InboxTopic(to))
		c := dialBench(b, sendNode, from, func(paho.Client, paho.Message) {},
			protocol.InboxTopic(from), protocol.DeviceTopic(from, "dev"))
		senders[i] = &benchSender{user: from, conv: conv.ID, c: c, stamp: true}
	}

	sent, elapsed := driveSenders(b, senders, &delivered, progress)
	acks := sendLatencies(senders)
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(quantileMS(acks, 0.50), "ack-p50-ms")
	b.ReportMetric(quantileMS(acks, 0.99), "ack-p99-ms")
	b.ReportMetric(quantileMS(deliver, 0.50), "deliver-p50-ms")
	b.ReportMetric(quantileMS(deliver, 0.99), "deliver-p99-ms")
}
