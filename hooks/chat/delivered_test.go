package chat

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/msgrhq/msgr/chat"
	"github.com/msgrhq/msgr/protocol"
)

func TestDeliveredRanges(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    []protocol.Cursor
	}{
		{"message", `{"v":1,"type":"message","msg":{"conv":"c","seq":7,"body":{"type":"text","text":"x"}}}`,
			[]protocol.Cursor{{Conv: "c", From: 6, Seq: 7}}},
		{"sync page", `{"v":1,"type":"sync","msgs":[{"conv":"a","seq":3},{"conv":"a","seq":4},{"conv":"b","seq":1},{"conv":"b","seq":2},{"conv":"b","seq":3}]}`,
			[]protocol.Cursor{{Conv: "a", From: 2, Seq: 4}, {Conv: "b", From: 0, Seq: 3}}},
		{"sync page with a hole", `{"v":1,"type":"sync","msgs":[{"conv":"a","seq":3},{"conv":"a","seq":5}]}`,
			[]protocol.Cursor{{Conv: "a", From: 2, Seq: 3}, {Conv: "a", From: 4, Seq: 5}}},
		{"empty sync", `{"v":1,"type":"sync"}`, nil},
		{"reply to a sync request", `{"v":1,"type":"sync","req":"r1","msgs":[{"conv":"a","seq":1}]}`, nil},
		{"other event", `{"v":1,"type":"sent","sent":{"conv":"c","seq":1}}`, nil},
		{"garbage", `not json`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := deliveredRanges([]byte(tt.payload)); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMergeRanges(t *testing.T) {
	in := []protocol.Cursor{
		{Conv: "b", From: 5, Seq: 6},
		{Conv: "a", From: 4, Seq: 5},
		{Conv: "b", From: 4, Seq: 5},
		{Conv: "a", From: 9, Seq: 10},
		{Conv: "a", From: 3, Seq: 4},
	}
	want := []protocol.Cursor{
		{Conv: "a", From: 3, Seq: 5},
		{Conv: "a", From: 9, Seq: 10},
		{Conv: "b", From: 4, Seq: 6},
	}
	if got := mergeRanges(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// One flush stores every device's merged acknowledgements in one call,
// chunked so that one transaction stays bounded.
func TestAckBufferFlushesDevicesTogether(t *testing.T) {
	var calls [][]chat.DeviceAcks
	b := newAckBuffer(func(_ context.Context, acks []chat.DeviceAcks) error {
		calls = append(calls, acks)
		return nil
	})
	b.add(chat.Device{User: "bob", Device: "phone"}, []protocol.Cursor{{Conv: "c", From: 5, Seq: 6}})
	b.add(chat.Device{User: "bob", Device: "phone"}, []protocol.Cursor{{Conv: "c", From: 4, Seq: 5}})
	b.add(chat.Device{User: "carol", Device: "phone"}, []protocol.Cursor{{Conv: "c", From: 0, Seq: 6}})
	b.flushAll(t.Context())
	if len(calls) != 1 || len(calls[0]) != 2 {
		t.Fatalf("calls %+v, want one with two devices", calls)
	}
	for _, a := range calls[0] {
		want := []protocol.Cursor{{Conv: "c", From: 4, Seq: 6}}
		if a.Device.User == "carol" {
			want = []protocol.Cursor{{Conv: "c", From: 0, Seq: 6}}
		}
		if !reflect.DeepEqual(a.Acks, want) {
			t.Errorf("%v: %+v, want %+v", a.Device, a.Acks, want)
		}
	}

	calls = nil
	for i := range 2*ackFlushChunk + 1 {
		b.add(chat.Device{User: fmt.Sprintf("u%d", i), Device: "d"}, []protocol.Cursor{{Conv: "c", From: 0, Seq: 1}})
	}
	b.flushAll(t.Context())
	if len(calls) != 3 || len(calls[0]) != ackFlushChunk || len(calls[2]) != 1 {
		t.Fatalf("%d calls for %d devices", len(calls), 2*ackFlushChunk+1)
	}
	b.flushAll(t.Context())
	if len(calls) != 3 {
		t.Fatal("a second flush stored the same acknowledgements again")
	}
}
