package relay

import "encoding/base64"

// Heap accounting. The relay's memory bound (Config.MaxTotalBytes) and the
// per-room bound count what envelopes, sets and seats really hold on the
// heap, not just envelope bytes: a flood of one-byte posts must hit the
// bound at the same heap size as a few large ones. The constants were set
// from measurements (TestMessageOverheadMatchesHeap, TestTinyPostFloodBound
// measure runtime heap growth per item and fail if a constant undercounts).
const (
	// MessageOverhead is a stored envelope's heap beyond its body's
	// allocation: the message struct (64 B size class) and its slot in
	// the set's log (8 B, up to 16 B while the log's array doubles), with
	// headroom. Measured beyond the body's allocation: 72–82 B (amd64,
	// Go 1.26; TestMessageOverheadMatchesHeap logs it).
	MessageOverhead = 112
	// seatOverhead covers a seat struct, its token map entry and the
	// token string answered once.
	seatOverhead = 256
	// setOverhead covers a member set's struct; each member adds its
	// 66-byte hex name and a 16-byte string header.
	setOverhead    = 256
	memberOverhead = 2*33 + 16
)

// messageCost is what one stored envelope with this body holds.
func messageCost(body []byte) int { return cap(body) + MessageOverhead }

// setCost is what a member set of n members holds (seats are extra).
func setCost(n int) int { return setOverhead + n*memberOverhead }

// encodedSize bounds m's share of a fetch answer: its JSON object, the
// base64 body and a separating comma.
func encodedSize(m *message) int {
	return len(`{"seq":18446744073709551615,"from":"","to":"","body":""},`) + len(m.from) + len(m.to) +
		base64.StdEncoding.EncodedLen(len(m.body))
}
