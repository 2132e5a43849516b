// Package proclog follows a child process's JSON log stream on its stderr:
// it copies every line to a sink and picks out the address of the line
// that announces where the process listens. The daemon's and the relay's
// test harnesses start real binaries and both need exactly this.
package proclog

import (
	"bufio"
	"encoding/json"
	"io"
)

// Follow reads r line by line until EOF, passing each line (without its
// newline; the slice is reused after the call) to sink, and sends on the
// returned channel the "addr" attribute of the first line whose "msg" is
// announce. done is closed once r is drained: call cmd.Wait only after it,
// since Wait closes the pipe.
func Follow(r io.Reader, announce string, sink func(line []byte)) (addr <-chan string, done <-chan struct{}) {
	addrc := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			sink(line)
			if sent {
				continue
			}
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == announce && rec.Addr != "" {
				addrc <- rec.Addr
				sent = true
			}
		}
	}()
	return addrc, readDone
}
