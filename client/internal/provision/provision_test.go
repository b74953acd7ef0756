package provision

import (
	"bytes"
	"crypto/rand"
	"errors"
	"reflect"
	"testing"
)

func sample() Message {
	return Message{AccountID: "0f8e2a4c-1d2b-4c1d-8a5e-000000000001", Username: "alice", Server: "http://127.0.0.1:7450",
		IdentityPrivate: bytes.Repeat([]byte{7}, 32), LinkToken: bytes.Repeat([]byte{9}, 32),
		HistoryID: bytes.Repeat([]byte{3}, 16), HistoryKey: bytes.Repeat([]byte{4}, 32), ProfileKey: bytes.Repeat([]byte{5}, 32)}
}

func TestSealOpen(t *testing.T) {
	code, priv, err := NewCode(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseCode("  " + code.String() + "\n")
	if err != nil || parsed != code {
		t.Fatalf("ParseCode(String()) = %v, %v", parsed, err)
	}
	sealed, err := Seal(rand.Reader, code, sample())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, sample().IdentityPrivate) || bytes.Contains(sealed, []byte("alice")) {
		t.Fatal("the sealed message shows its content")
	}
	got, err := Open(priv, code, sealed)
	if err != nil || !reflect.DeepEqual(got, sample()) {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	// Every changed byte is detected; another code's key does not open it;
	// a message for another relay id does not open.
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := Open(priv, code, bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("byte %d changed: %v", i, err)
		}
	}
	other, otherPriv, _ := NewCode(rand.Reader)
	if _, err := Open(otherPriv, code, sealed); !errors.Is(err, ErrInvalid) {
		t.Fatal("another key opened the message")
	}
	moved := code
	moved.ID = other.ID
	if _, err := Open(priv, moved, sealed); !errors.Is(err, ErrInvalid) {
		t.Fatal("the message opened under another relay id")
	}
}

func TestParseCodeErrors(t *testing.T) {
	code, _, _ := NewCode(rand.Reader)
	s := code.String()
	for name, in := range map[string]string{
		"empty": "", "no prefix": s[len(prefix):], "truncated": s[:len(s)-3], "padding": s + "==",
		"bad char": s[:len(s)-1] + "*", "version": prefix + "Ag" + s[len(prefix)+2:],
	} {
		if _, err := ParseCode(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: ParseCode = %v", name, err)
		}
	}
	if _, err := Seal(rand.Reader, code, Message{}); !errors.Is(err, ErrInvalid) {
		t.Fatal("an empty message sealed")
	}
	half := sample()
	half.HistoryKey = nil
	if _, err := Seal(rand.Reader, code, half); !errors.Is(err, ErrInvalid) {
		t.Fatal("a history id without its key sealed")
	}
	none := sample()
	none.HistoryID, none.HistoryKey = nil, nil
	if _, err := Seal(rand.Reader, code, none); err != nil {
		t.Fatalf("a message without history: %v", err)
	}
}

func FuzzParseCode(f *testing.F) {
	code, _, _ := NewCode(rand.Reader)
	f.Add(code.String())
	f.Add("veil-link:")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			return
		}
		if again, err := ParseCode(c.String()); err != nil || again != c {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}

func FuzzOpen(f *testing.F) {
	code, priv, _ := NewCode(rand.Reader)
	sealed, _ := Seal(rand.Reader, code, sample())
	f.Add(sealed)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Open(priv, code, b); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error outside ErrInvalid: %v", err)
		}
	})
}

func FuzzUnmarshal(f *testing.F) {
	pt, _ := sample().marshal()
	f.Add(pt)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := unmarshal(b)
		if err != nil {
			return
		}
		again, err := m.marshal()
		if err != nil {
			t.Fatal(err)
		}
		if m2, err := unmarshal(again); err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatal("re-encoding changed the message")
		}
	})
}
