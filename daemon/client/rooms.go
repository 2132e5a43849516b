package client

import (
	"context"

	"github.com/quorumd/quorumd/internal/uuid"
)

// CreateRoom makes a room of size parties on the daemon's default relay.
func (c *Client) CreateRoom(ctx context.Context, size int) (string, error) {
	const path = "/create-room"
	r, err := postJSON(path, map[string]int{"room_size": size})
	if err != nil {
		return "", err
	}
	var out struct {
		RoomUUID string `json:"room_uuid"`
	}
	if err := c.do(ctx, r, &out); err != nil {
		return "", err
	}
	if !uuid.Valid(out.RoomUUID) {
		return "", c.badResponse(path, "room_uuid %q is not a UUID", printable([]byte(out.RoomUUID), 64))
	}
	return out.RoomUUID, nil
}

// BatchRooms is the body of POST /batch-create-rooms: Sizes, or Size rooms
// Count times.
type BatchRooms struct {
	Sizes []int `json:"room_sizes,omitempty"`
	Size  int   `json:"room_size,omitempty"`
	Count int   `json:"count,omitempty"`
}

// BatchCreateRooms makes several rooms on the daemon's default relay.
func (c *Client) BatchCreateRooms(ctx context.Context, b BatchRooms) ([]string, error) {
	const path = "/batch-create-rooms"
	r, err := postJSON(path, b)
	if err != nil {
		return nil, err
	}
	var out struct {
		RoomUUIDs []string `json:"room_uuids"`
	}
	if err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	for _, id := range out.RoomUUIDs {
		if !uuid.Valid(id) {
			return nil, c.badResponse(path, "room_uuid %q is not a UUID", printable([]byte(id), 64))
		}
	}
	return out.RoomUUIDs, nil
}
