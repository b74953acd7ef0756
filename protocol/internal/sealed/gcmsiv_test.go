package sealed

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// RFC 8452 Appendix C.2 (AEAD_AES_256_GCM_SIV), the cases without
// associated data, plus one with.
func TestGCMSIVVectors(t *testing.T) {
	key := [32]byte{1}
	nonce, _ := hex.DecodeString("030000000000000000000000")
	for _, v := range []struct{ aad, pt, out string }{
		{"", "", "07f5f4169bbf55a8400cd47ea6fd400f"},
		{"", "0100000000000000", "c2ef328e5c71c83b843122130f7364b761e0b97427e3df28"},
		{"", "010000000000000000000000", "9aab2aeb3faa0a34aea8e2b18ca50da9ae6559e48fd10f6e5c9ca17e"},
		{"", "01000000000000000000000000000000", "85a01b63025ba19b7fd3ddfc033b3e76c9eac6fa700942702e90862383c6c366"},
		{"", "0100000000000000000000000000000002000000000000000000000000000000",
			"4a6a9db4c8c6549201b9edb53006cba821ec9cf850948a7c86c68ac7539d027fe819e63abcd020b006a976397632eb5d"},
		{"", "010000000000000000000000000000000200000000000000000000000000000003000000000000000000000000000000",
			"c00d121893a9fa603f48ccc1ca3c57ce7499245ea0046db16c53c7c66fe717e39cf6c748837b61f6ee3adcee17534ed5790bc96880a99ba804bd12c0e6a22cc4"},
	} {
		aad, _ := hex.DecodeString(v.aad)
		pt, _ := hex.DecodeString(v.pt)
		got := SIVSeal(nil, &key, nonce, aad, pt)
		if hex.EncodeToString(got) != v.out {
			t.Errorf("seal %s:\n got %x\nwant %s", v.pt, got, v.out)
			continue
		}
		back, err := SIVOpen([]byte("x"), &key, nonce, aad, got)
		if err != nil || !bytes.Equal(back, append([]byte("x"), pt...)) {
			t.Errorf("open %s: %x, %v", v.pt, back, err)
		}
		for i := range got {
			bad := bytes.Clone(got)
			bad[i] ^= 0x80
			if _, err := SIVOpen(nil, &key, nonce, aad, bad); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("flipped byte %d opens", i)
			}
		}
	}
	if _, err := SIVOpen(nil, &key, nonce, nil, make([]byte, 15)); !errors.Is(err, ErrDecrypt) {
		t.Error("short ciphertext opens")
	}
}
