package msgr

import (
	"slices"

	"github.com/msgrhq/msgr/protocol"
)

// maxLiveUnread bounds the seqs remembered per conversation; past it they
// are folded into the broker's count.
const maxLiveUnread = 1024

// unreadConv is what the client knows about the unread messages of one
// conversation: the broker's last count, and the messages from others
// that arrived after it.
type unreadConv struct {
	read   int64   // the user's read position
	last   int64   // the newest seq the broker's count covers
	count  int64   // unread messages up to last, as the broker counted them
	live   []int64 // ascending seqs > last of messages from others since then
	newest int64   // the newest seq known to exist
}

// unread is the number of unread messages. When another device read part
// of what the broker counted, the broker's count is capped by the seqs
// left (last - read): exact unless the user wrote some of those messages.
func (u *unreadConv) unread() int64 {
	n := min(u.count, max(0, u.last-u.read))
	for _, seq := range u.live {
		if seq > u.read {
			n++
		}
	}
	return n
}

// markRead drops what is read up to seq.
func (u *unreadConv) markRead(seq int64) {
	if seq <= u.read {
		return
	}
	u.read = seq
	i, _ := slices.BinarySearch(u.live, seq+1)
	u.live = slices.Delete(u.live, 0, i)
}

// unreadCounts tracks unread messages per conversation. The broker's
// counts (the last sync page, conversations replies) are the base;
// messages from others that arrive later add to them, and read receipts of
// the user's own devices take away from them. It is not safe for
// concurrent use.
type unreadCounts struct {
	convs map[string]*unreadConv
}

func newUnreadCounts() *unreadCounts {
	return &unreadCounts{convs: make(map[string]*unreadConv)}
}

func (uc *unreadCounts) conv(conv string) *unreadConv {
	u := uc.convs[conv]
	if u == nil {
		u = &unreadConv{}
		uc.convs[conv] = u
	}
	return u
}

// set records the broker's count of conv: count messages after read, up to
// last. Messages from others after last that arrived meanwhile stay
// counted; the ones before it are in the count. A count older than the one
// the client has (a smaller last) only contributes its read position.
func (uc *unreadCounts) set(conv string, read, last, count int64) {
	u := uc.conv(conv)
	u.newest = max(u.newest, last)
	if last < u.last {
		u.markRead(read)
		return
	}
	u.last, u.count = last, count
	i, _ := slices.BinarySearch(u.live, last+1)
	u.live = slices.Delete(u.live, 0, i)
	u.markRead(read)
}

// replace takes the last sync page's list: every conversation not in it
// has no unread messages.
func (uc *unreadCounts) replace(unread []protocol.Unread) {
	listed := make(map[string]bool, len(unread))
	for _, un := range unread {
		listed[un.Conv] = true
		uc.set(un.Conv, un.Read, un.LastSeq, un.Count)
	}
	for conv, u := range uc.convs {
		if !listed[conv] {
			u.count, u.live = 0, nil
		}
	}
}

// message counts m if it is from someone else and newer than what the
// broker counted and what the user read. The user's own message means
// they have read everything up to it, as for the broker.
func (uc *unreadCounts) message(m protocol.Message, user string) {
	u := uc.conv(m.Conv)
	u.newest = max(u.newest, m.Seq)
	if m.From == user {
		u.markRead(m.Seq)
		return
	}
	if m.Seq <= u.last || m.Seq <= u.read {
		return
	}
	i, found := slices.BinarySearch(u.live, m.Seq)
	if found {
		return
	}
	u.live = slices.Insert(u.live, i, m.Seq)
	if len(u.live) > maxLiveUnread {
		// Fold the seqs into the count: exact, since they are all unread.
		u.count, u.last, u.live = u.unread(), u.live[len(u.live)-1], nil
	}
}

// markRead records that the user read conv up to seq, as the broker says.
func (uc *unreadCounts) markRead(conv string, seq int64) {
	if seq > 0 {
		uc.conv(conv).markRead(seq)
	}
}

// sent records that the user sent message seq of conv: they have read
// everything up to it.
func (uc *unreadCounts) sent(conv string, seq int64) {
	u := uc.conv(conv)
	u.newest = max(u.newest, seq)
	u.markRead(seq)
}

// markReadKnown is markRead for a position the broker has yet to cap at
// the newest message: it is capped at the newest message the client
// knows of, so that messages the broker has and the client has not seen
// yet stay unread.
func (uc *unreadCounts) markReadKnown(conv string, seq int64) {
	if u := uc.convs[conv]; u != nil {
		uc.markRead(conv, min(seq, u.newest))
	}
}

// counts returns the conversations with unread messages and their counts.
func (uc *unreadCounts) counts() map[string]int64 {
	m := make(map[string]int64)
	for conv, u := range uc.convs {
		if n := u.unread(); n > 0 {
			m[conv] = n
		}
	}
	return m
}
