package main

import (
	"net"
	"os"
	"strings"
)

// sdNotify sends state to systemd's notification socket (Type=notify
// units); without NOTIFY_SOCKET it does nothing. An abstract socket is
// written with a leading '@'.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}
