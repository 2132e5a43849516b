package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"
)

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
