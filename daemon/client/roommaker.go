package client

import (
	"context"
	"fmt"
	"net"

	"github.com/quorumd/quorumd/mpc/relay"
)

// RoomMaker creates a room for size parties and says where (for step
// lines).
type RoomMaker func(ctx context.Context, size int) (room, where string, err error)

// DaemonRoom makes rooms with POST /create-room on c (its default relay);
// idx names the daemon in step lines.
func DaemonRoom(c *Client, idx int) RoomMaker {
	return func(ctx context.Context, size int) (string, string, error) {
		room, err := c.CreateRoom(ctx, size)
		return room, fmt.Sprintf("on daemon %d", idx), err
	}
}

// RelayRoom makes rooms directly on the relay at addr (host:port), for
// ceremonies that pass relay_address: a daemon's /create-room only knows
// its default relay. Call the returned func to release the relay client.
func RelayRoom(addr string) (RoomMaker, func(), error) {
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
