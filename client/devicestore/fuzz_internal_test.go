package devicestore

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseHeader: any input either parses to a header whose encoding is
// exactly the input (one valid encoding per header) and whose KDF costs
// are in bounds, or fails with ErrInvalidHeader. Never a panic.
func FuzzParseHeader(f *testing.F) {
	for _, u := range []Unlock{Passphrase("p"), KeyFile(make([]byte, 32))} {
		h, err := newHeader(zeroReader{}, u, DefaultKDFParams)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(h.marshal())
	}
	f.Add([]byte(headerMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidHeader) {
				t.Fatalf("error %v is not ErrInvalidHeader", err)
			}
			return
		}
		if !bytes.Equal(h.marshal(), b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", h.marshal(), b)
		}
		if h.kind == kindPassphrase && !h.kdf.valid() {
			t.Fatalf("accepted out-of-range costs %+v", h.kdf)
		}
		// Checking a key against any parsed header is safe (no Argon2id
		// here: verify only needs derived keys).
		var k keys
		if h.verify(&k) && h.check != h.checkValue(&k) {
			t.Fatal("verify disagrees with checkValue")
		}
	})
}

func TestParseHeader(t *testing.T) {
	h, _ := newHeader(zeroReader{}, Passphrase("p"), DefaultKDFParams)
	good := h.marshal()
	if got, err := parseHeader(good); err != nil || got.kdf != DefaultKDFParams || got.kind != kindPassphrase {
		t.Fatalf("parse of a good header = %+v, %v", got, err)
	}
	kf, _ := newHeader(zeroReader{}, KeyFile(make([]byte, 32)), DefaultKDFParams)
	if got, err := parseHeader(kf.marshal()); err != nil || got.kdf != (KDFParams{}) || got.kind != kindKeyFile {
		t.Fatalf("parse of a key-file header = %+v, %v", got, err)
	}
	edit := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	for name, b := range map[string][]byte{
		"empty":          nil,
		"short":          good[:66],
		"long":           append(bytes.Clone(good), 0),
		"magic":          edit(0, 'X'),
		"version":        edit(8, 2),
		"kind":           edit(9, 3),
		"zero time":      append(append(bytes.Clone(good[:10]), 0, 0, 0, 0), good[14:]...),
		"huge memory":    edit(14, 0xff),
		"zero threads":   edit(18, 0),
		"key file costs": append(append(bytes.Clone(kf.marshal()[:18]), 1), kf.marshal()[19:]...),
	} {
		if _, err := parseHeader(b); !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("%s: %v, want ErrInvalidHeader", name, err)
		}
	}
}
