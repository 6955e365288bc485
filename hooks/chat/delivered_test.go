package chat

import (
	"reflect"
	"testing"

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
