package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/quorumd/quorumd/mpc/relay"
)

// roomMaker creates a room for size parties and says where (for output).
type roomMaker func(ctx context.Context, size int) (room, where string, err error)

// daemonRoom makes rooms with POST /create-room on c (its default relay).
func daemonRoom(c *Client, idx int) roomMaker {
	return func(ctx context.Context, size int) (string, string, error) {
		where := fmt.Sprintf("on daemon %d", idx)
		room, err := c.CreateRoom(ctx, size)
		return room, where, err
	}
}

// relayRoom makes rooms directly on the relay at addr (host:port), for
// ceremonies that pass relay_address: a daemon's /create-room only knows
// its default relay.
func relayRoom(addr string) (roomMaker, func(), error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, nil, usagef("-relay-address %q: want host:port", addr)
	}
	rc, err := relay.NewClient("http://"+addr, relay.ClientConfig{})
	if err != nil {
		return nil, nil, fmt.Errorf("relay client: %w", err)
	}
	return func(ctx context.Context, size int) (string, string, error) {
		room, err := rc.CreateRoom(ctx, size)
		return room, "on relay " + addr, err
	}, rc.Close, nil
}

func runCreateRoom(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl create-room", flag.ContinueOnError)
	var h httpFlags
	h.register(fs, 30*time.Second)
	daemon := fs.String("daemon", "", "daemon base URL")
	key := fs.String("key", "", "API key of a user (prefer QUORUMCTL_KEY)")
	size := fs.Int("size", 0, "number of parties of the room")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if *daemon == "" || *key == "" || *size < 1 {
		return usagef("-daemon, -key and -size (>= 1) are required")
	}
	cl, ctx, cancel, err := h.client(ctx, *daemon, *key)
	if err != nil {
		return err
	}
	defer cancel()
	room, err := cl.CreateRoom(ctx, *size)
	if err != nil {
		return err
	}
	res := struct {
		RoomUUID string `json:"room_uuid"`
		Size     int    `json:"room_size"`
	}{room, *size}
	return h.printer(c).result(res, func(w io.Writer) { fmt.Fprintf(w, "room_uuid: %s\n", room) })
}
