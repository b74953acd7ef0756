package wire

import (
	"bytes"
	"testing"
)

// FuzzSignalMessage: the decoder never panics, and whatever it accepts
// re-encodes to exactly the same bytes (one encoding per message).
func FuzzSignalMessage(f *testing.F) {
	f.Add([]byte{VersionByte, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, auth, err := ParseSignalMessage(b)
		if err != nil {
			return
		}
		re := AppendSignalMessage(nil, &m)
		if !bytes.Equal(re, auth) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", auth, re)
		}
		if !bytes.Equal(append(re, m.MAC[:]...), b) {
			t.Fatal("MAC not preserved")
		}
	})
}

// FuzzPreKeySignalMessage: as FuzzSignalMessage, for PreKey messages.
func FuzzPreKeySignalMessage(f *testing.F) {
	f.Add([]byte{VersionByte})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParsePreKeySignalMessage(b)
		if err != nil {
			return
		}
		if re := AppendPreKeySignalMessage(nil, &m); !bytes.Equal(re, b) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", b, re)
		}
	})
}
