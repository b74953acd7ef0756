package store

import (
	"context"
	"time"
)

// DeviceExpirer removes linked devices that have not connected for a
// long time, implemented by both backends beside [Store].
type DeviceExpirer interface {
	// ExpireDevices deletes every device other than an account's first
	// (device 1, the one that registered it) whose last-seen day is
	// before cutoff, with its keys and queue, and returns them.
	ExpireDevices(ctx context.Context, cutoff time.Time) ([]DeviceRef, error)
}

// DeviceRef names a device.
type DeviceRef struct {
	Account  AccountID
	DeviceID uint32
}
