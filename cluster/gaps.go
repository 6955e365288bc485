package cluster

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"
)

// gapWait is how long a gap in a conversation's seqs may stay open before
// the user's devices here are nudged to sync: events of one conversation
// reach a node from several nodes and may overtake each other briefly.
const gapWait = 2 * time.Second

// maxGapUsers bounds the tracker; when full it starts over (a fresh start
// only misses gaps that were open at that moment).
const maxGapUsers = 100_000

// maxAhead bounds the seqs remembered above a gap; more means the gap is
// real.
const maxAhead = 256

// gapTracker watches the message seqs each user with devices on this node
// receives per conversation. Seqs are gapless per conversation, so a seq
// that stays missing means an event was lost (a forward dropped between
// nodes, a fan-out that could not list members): the user's devices here
// are nudged to sync from the store instead of waiting for a reconnect.
type gapTracker struct {
	mu    sync.Mutex
	users map[string]map[string]*gapState
}

type gapState struct {
	next  int64              // every seq below next has been seen
	ahead map[int64]struct{} // seen seqs above next
	since time.Time          // when the open gap was noticed; zero if none
}

func newGapTracker() *gapTracker {
	return &gapTracker{users: make(map[string]map[string]*gapState)}
}

func (g *gapTracker) observe(user, conv string, seq int64, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	convs := g.users[user]
	if convs == nil {
		if len(g.users) >= maxGapUsers {
			clear(g.users)
		}
		convs = make(map[string]*gapState)
		g.users[user] = convs
	}
	st := convs[conv]
	if st == nil {
		// The first event seen is the baseline: what came before is the
		// device's sync's business.
		convs[conv] = &gapState{next: seq + 1}
		return
	}
	switch {
	case seq < st.next:
		return // a duplicate or an old seq
	case seq == st.next:
		st.next++
		for {
			if _, ok := st.ahead[st.next]; !ok {
				break
			}
			delete(st.ahead, st.next)
			st.next++
		}
		if len(st.ahead) == 0 {
			st.since = time.Time{}
		}
	default:
		if st.ahead == nil {
			st.ahead = make(map[int64]struct{})
		}
		st.ahead[seq] = struct{}{}
		if st.since.IsZero() {
			st.since = now
		}
		if len(st.ahead) > maxAhead {
			st.since = now.Add(-gapWait)
		}
	}
}

// due returns the users with a gap open for at least wait and resets those
// conversations past their highest seen seq (the nudge covers the gap).
func (g *gapTracker) due(now time.Time, wait time.Duration) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for user, convs := range g.users {
		hit := false
		for _, st := range convs {
			if st.since.IsZero() || now.Sub(st.since) < wait {
				continue
			}
			for s := range st.ahead {
				st.next = max(st.next, s+1)
			}
			st.ahead, st.since = nil, time.Time{}
			hit = true
		}
		if hit {
			out = append(out, user)
		}
	}
	return out
}

func (g *gapTracker) forget(user string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.users, user)
}

var messageType = []byte(`"type":"message"`)

// messageRef returns the conversation and seq of a message event.
func messageRef(payload []byte) (string, int64, bool) {
	if !bytes.Contains(payload, messageType) {
		return "", 0, false
	}
	var ev struct {
		Type string `json:"type"`
		Msg  *struct {
			Conv string `json:"conv"`
			Seq  int64  `json:"seq"`
		} `json:"msg"`
	}
	if json.Unmarshal(payload, &ev) != nil || ev.Type != "message" || ev.Msg == nil || ev.Msg.Seq < 1 {
		return "", 0, false
	}
	return ev.Msg.Conv, ev.Msg.Seq, true
}

// checkGaps nudges the users whose gaps stayed open.
func (n *Node) checkGaps() {
	for _, u := range n.gaps.due(time.Now(), gapWait) {
		n.log.Debug("cluster: gap in message seqs, nudging sync", "user", u)
		n.nudgeUser(u)
	}
}
