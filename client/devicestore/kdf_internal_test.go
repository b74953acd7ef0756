package devicestore

import (
	"testing"
	"time"
)

// TestDefaultKDFCost derives keys with the real costs and logs the time
// (docs/CLIENT.md quotes it). It fails only if unlocking takes absurdly
// long, which would mean the costs are wrong for a phone-class device.
func TestDefaultKDFCost(t *testing.T) {
	h, err := newHeader(zeroReader{}, Passphrase("x"), DefaultKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	k, err := deriveKeys(h, Passphrase("x"))
	if err != nil {
		t.Fatal(err)
	}
	k.clear()
	d := time.Since(start)
	t.Logf("Argon2id t=%d m=%d KiB p=%d: %v", DefaultKDFParams.Time, DefaultKDFParams.Memory, DefaultKDFParams.Threads, d)
	if d > 30*time.Second {
		t.Errorf("unlock took %v", d)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
