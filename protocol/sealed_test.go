package protocol_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/veil-e2ee/veil/protocol"
)

// sentV2 builds a sent v2 message by hand: version 0x23, recipients given
// as (kind, uuid byte, devices) with registration ids 0x1000+device.
func sentV2(version byte, recips ...[]byte) []byte {
	b := []byte{version, byte(len(recips))}
	for _, r := range recips {
		kind, id, devs := r[0], r[1], r[2:]
		if version == 0x23 {
			b = append(b, kind)
		}
		b = append(b, bytes.Repeat([]byte{id}, 16)...)
		if len(devs) == 0 {
			b = append(b, 0)
			continue
		}
		for i, d := range devs {
			reg := uint16(0x1000 + int(d))
			if i < len(devs)-1 {
				reg |= 0x8000
			}
			b = append(b, d, byte(reg>>8), byte(reg))
		}
		b = append(b, bytes.Repeat([]byte{id ^ 0xFF}, 48)...)
	}
	return append(b, bytes.Repeat([]byte{0xEE}, 32+40)...) // E.pub ‖ ciphertext
}

func TestParseMultiRecipient(t *testing.T) {
	body := sentV2(0x23, []byte{0, 0xA1, 1, 2}, []byte{1, 0xB2, 5}, []byte{0, 0xC3}, []byte{0, 0xA1, 3})
	m, err := protocol.ParseMultiRecipient(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Recipients) != 3 {
		t.Fatalf("%d recipients, want 3 (the repeated ACI merged)", len(m.Recipients))
	}
	a := m.Recipients[0]
	if a.ServiceID != [16]byte(bytes.Repeat([]byte{0xA1}, 16)) || a.Kind != protocol.ACI {
		t.Errorf("first recipient %x kind %d", a.ServiceID, a.Kind)
	}
	if len(a.Devices) != 3 || a.Devices[0] != (protocol.MultiRecipientDevice{DeviceID: 1, RegistrationID: 0x1001}) ||
		a.Devices[2] != (protocol.MultiRecipientDevice{DeviceID: 3, RegistrationID: 0x1003}) {
		t.Errorf("merged devices %+v", a.Devices)
	}
	if m.Recipients[1].Kind != protocol.PNI || len(m.Recipients[1].Devices) != 1 {
		t.Errorf("PNI recipient %+v", m.Recipients[1])
	}
	if len(m.Recipients[2].Devices) != 0 || m.MessageFor(2) != nil {
		t.Error("excluded recipient has devices or a message")
	}
	got := m.MessageFor(0)
	want := append(append([]byte{0x22}, bytes.Repeat([]byte{0xA1 ^ 0xFF}, 48)...), bytes.Repeat([]byte{0xEE}, 72)...)
	if !bytes.Equal(got, want) {
		t.Errorf("MessageFor(0) = %x\nwant %x", got, want)
	}
	if m.MessageFor(3) != nil || m.MessageFor(-1) != nil {
		t.Error("MessageFor out of range is not nil")
	}

	// 0x22 carries bare UUIDs (always ACIs).
	m, err = protocol.ParseMultiRecipient(sentV2(0x22, []byte{0, 0x11, 1}))
	if err != nil || len(m.Recipients) != 1 || m.Recipients[0].Devices[0].DeviceID != 1 {
		t.Fatalf("0x22: %+v, %v", m, err)
	}
}

func TestParseMultiRecipientRejects(t *testing.T) {
	good := sentV2(0x23, []byte{0, 0xA1, 1, 2})
	cases := map[string][]byte{
		"empty":            nil,
		"v1 version":       append([]byte{0x11}, good[1:]...),
		"truncated":        good[:40],
		"no shared part":   good[:len(good)-72+31],
		"huge count":       append([]byte{0x23, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}, good[2:]...),
		"non-minimal len":  append([]byte{0x23, 0x81, 0x00}, good[2:]...),
		"bad kind":         sentV2(0x23, []byte{2, 0xA1, 1}),
		"device 128":       sentV2(0x23, []byte{0, 0xA1, 128}),
		"excluded twice":   sentV2(0x23, []byte{0, 0xA1}, []byte{0, 0xA1}),
		"excluded and not": sentV2(0x23, []byte{0, 0xA1, 1}, []byte{0, 0xA1}),
	}
	for name, b := range cases {
		_, err := protocol.ParseMultiRecipient(b)
		want := protocol.ErrInvalidMessage
		if name == "v1 version" {
			want = protocol.ErrUnknownVersion
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", name, err, want)
		}
	}
}
