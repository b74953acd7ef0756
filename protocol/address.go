package protocol

import (
	"strconv"
)

// Address names one device of one peer: the account's identifier (Veil
// uses the account UUID, as Signal uses the ACI) and a device id.
type Address struct {
	Name     string
	DeviceID uint32
}

// String formats the address as libsignal does: "name.device".
func (a Address) String() string {
	return a.Name + "." + strconv.FormatUint(uint64(a.DeviceID), 10)
}

// Direction says whether an identity is being checked to send or to
// receive (an identity store may apply different rules).
type Direction int

const (
	Sending Direction = iota + 1
	Receiving
)
