package wire

import (
	"bytes"
	"errors"
	"testing"
)

func sampleSignal() []byte {
	m := SignalMessage{RatchetKey: append([]byte{5}, make([]byte, 32)...), Counter: 3, PreviousCounter: 1, Ciphertext: make([]byte, 32)}
	b := AppendSignalMessage(nil, &m)
	return append(b, 1, 2, 3, 4, 5, 6, 7, 8)
}

func TestSignalMessageStrict(t *testing.T) {
	good := sampleSignal()
	if _, _, err := ParseSignalMessage(good); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":          nil,
		"legacy version": append([]byte{0x33}, good[1:]...),
		"future version": append([]byte{0x55}, good[1:]...),
		"low nibble":     append([]byte{0x43}, good[1:]...),
		"trailing byte":  append(append(bytes.Clone(good[:len(good)-8]), 0x00), good[len(good)-8:]...),
		"truncated":      good[:len(good)-9],
		"unknown field":  append(append(bytes.Clone(good[:len(good)-8]), 0x38, 0x01), good[len(good)-8:]...),
	}
	// Fields out of order: move counter after previous_counter.
	for name, b := range cases {
		if _, _, err := ParseSignalMessage(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := ParseSignalMessage(cases["legacy version"]); !errors.Is(err, ErrLegacyVersion) {
		t.Errorf("legacy: %v", err)
	}
	if _, _, err := ParseSignalMessage(cases["future version"]); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("future: %v", err)
	}
	// Non-minimal varint for counter (3 encoded as 0x83 0x00).
	m := SignalMessage{RatchetKey: append([]byte{5}, make([]byte, 32)...), Counter: 3, PreviousCounter: 1, Ciphertext: make([]byte, 32)}
	b := []byte{VersionByte}
	b = AppendBytes(b, 1, m.RatchetKey)
	b = append(b, 0x10, 0x83, 0x00)
	b = AppendUint(b, 3, 1)
	b = AppendBytes(b, 4, m.Ciphertext)
	b = append(b, make([]byte, 8)...)
	if _, _, err := ParseSignalMessage(b); err == nil {
		t.Error("non-minimal varint accepted")
	}
	// Duplicate field.
	b = []byte{VersionByte}
	b = AppendBytes(b, 1, m.RatchetKey)
	b = AppendUint(b, 2, 3)
	b = AppendUint(b, 2, 3)
	b = AppendUint(b, 3, 1)
	b = AppendBytes(b, 4, m.Ciphertext)
	b = append(b, make([]byte, 8)...)
	if _, _, err := ParseSignalMessage(b); err == nil {
		t.Error("duplicate field accepted")
	}
	// Out of order.
	b = []byte{VersionByte}
	b = AppendBytes(b, 1, m.RatchetKey)
	b = AppendUint(b, 3, 1)
	b = AppendUint(b, 2, 3)
	b = AppendBytes(b, 4, m.Ciphertext)
	b = append(b, make([]byte, 8)...)
	if _, _, err := ParseSignalMessage(b); err == nil {
		t.Error("out-of-order fields accepted")
	}
}

func TestPreKeySignalMessageStrict(t *testing.T) {
	m := PreKeySignalMessage{
		HasPreKeyID: true, PreKeyID: 7, BaseKey: append([]byte{5}, make([]byte, 32)...),
		IdentityKey: append([]byte{5}, make([]byte, 32)...), Message: sampleSignal(),
		RegistrationID: 42, SignedPreKeyID: 1, KyberPreKeyID: 2,
		KyberCiphertext: append([]byte{8}, make([]byte, 1568)...),
	}
	good := AppendPreKeySignalMessage(nil, &m)
	got, err := ParsePreKeySignalMessage(good)
	if err != nil || got.PreKeyID != 7 || got.RegistrationID != 42 || !bytes.Equal(got.Message, m.Message) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := ParsePreKeySignalMessage(append(bytes.Clone(good), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	noKyber := m
	noKyber.KyberCiphertext = nil
	b := []byte{VersionByte}
	b = AppendUint(b, 1, 7)
	b = AppendBytes(b, 2, m.BaseKey)
	b = AppendBytes(b, 3, m.IdentityKey)
	b = AppendBytes(b, 4, m.Message)
	b = AppendUint(b, 5, 42)
	b = AppendUint(b, 6, 1)
	if _, err := ParsePreKeySignalMessage(b); err == nil {
		t.Error("message without Kyber fields accepted (version 4 requires PQXDH)")
	}
}
