package store

import (
	"context"
	"time"
)

// DeviceExpirer removes linked devices that have not connected for a
// long time, implemented by both backends beside [Store].
type DeviceExpirer interface {
	// ExpireDevices deletes every device other than an account's oldest
	// (the lowest id: the one that registered it, or the device an
	// account recovery made) whose last-seen day is before cutoff, with
	// its keys and queue, and returns them.
	ExpireDevices(ctx context.Context, cutoff time.Time) ([]DeviceRef, error)
}

// DeviceRef names a device.
type DeviceRef struct {
	Account  AccountID
	DeviceID uint32
}

// DeviceNamer keeps each device's name as opaque ciphertext (devices
// encrypt their names with a key of the account; the server cannot read
// them), implemented by both backends beside [Store].
type DeviceNamer interface {
	// SetDeviceName stores a device's encrypted name (ErrNotFound if the
	// device does not exist).
	SetDeviceName(ctx context.Context, account AccountID, deviceID uint32, name []byte) error
	// DeviceNames returns the encrypted names of an account's devices
	// that have one.
	DeviceNames(ctx context.Context, account AccountID) (map[uint32][]byte, error)
}
