package proclog

import (
	"strings"
	"testing"
)

func TestFollow(t *testing.T) {
	in := strings.Join([]string{
		`{"msg":"starting"}`,
		`not json`,
		`{"msg":"listening","addr":""}`,
		`{"msg":"listening","addr":"127.0.0.1:1"}`,
		`{"msg":"listening","addr":"127.0.0.1:2"}`,
		`{"msg":"bye"}`,
	}, "\n")
	var lines []string
	addr, done := Follow(strings.NewReader(in), "listening", func(l []byte) { lines = append(lines, string(l)) })
	<-done
	if got := <-addr; got != "127.0.0.1:1" {
		t.Errorf("addr %q, want the first announced one", got)
	}
	if len(lines) != 6 || lines[1] != "not json" || lines[5] != `{"msg":"bye"}` {
		t.Errorf("sink got %q, want every line in order", lines)
	}
}

func TestFollowNoAnnouncement(t *testing.T) {
	addr, done := Follow(strings.NewReader(`{"msg":"other","addr":"x"}`), "listening", func([]byte) {})
	<-done
	select {
	case a := <-addr:
		t.Errorf("addr %q from a stream that never announced", a)
	default:
	}
}
