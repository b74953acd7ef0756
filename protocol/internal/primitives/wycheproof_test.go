package primitives

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"github.com/veil-e2ee/veil/protocol/internal/wycheproof"
)

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

type wycheFile[T any] struct {
	Algorithm     string `json:"algorithm"`
	NumberOfTests int    `json:"numberOfTests"`
	TestGroups    []struct {
		KeySize int `json:"keySize"`
		TagSize int `json:"tagSize"`
		Tests   []T `json:"tests"`
	} `json:"testGroups"`
}

type wycheCase struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
	Result  string   `json:"result"`
}

func loadWycheproof[T any](t *testing.T, name, algorithm string) *wycheFile[T] {
	t.Helper()
	b := wycheproof.Read(t, name)
	var f wycheFile[T]
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if f.Algorithm != algorithm {
		t.Fatalf("%s: algorithm %q, want %q", name, f.Algorithm, algorithm)
	}
	return &f
}

// checkCount makes a silently short run fail: every vector the file announces must have been
// run, and at least min of them.
func checkCount(t *testing.T, name string, ran, announced, min int) {
	t.Helper()
	if ran != announced || ran < min {
		t.Fatalf("%s: ran %d vectors, file announces %d, want at least %d", name, ran, announced, min)
	}
	t.Logf("%s: %d vectors", name, ran)
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

func TestWycheproofAESCBC(t *testing.T) {
	type tc struct {
		wycheCase
		Key hexBytes `json:"key"`
		IV  hexBytes `json:"iv"`
		Msg hexBytes `json:"msg"`
		CT  hexBytes `json:"ct"`
	}
	f := loadWycheproof[tc](t, "aes_cbc_pkcs5_test.json", "AES-CBC-PKCS5")
	ran, valid, invalid := 0, 0, 0
	keySizes := map[int]bool{}
	for _, g := range f.TestGroups {
		keySizes[g.KeySize] = true
		for _, c := range g.Tests {
			ran++
			prefix := []byte("prefix")
			pt, err := DecryptCBC(prefix, c.Key, c.IV, c.CT)
			switch c.Result {
			case "valid":
				valid++
				if err != nil {
					t.Errorf("tc %d (%s): decrypt: %v", c.TcID, c.Comment, err)
				} else if !bytes.Equal(pt, append([]byte("prefix"), c.Msg...)) {
					t.Errorf("tc %d: decrypt = %x, want prefix‖%x", c.TcID, pt, c.Msg)
				}
				ct, err := EncryptCBC([]byte("x"), c.Key, c.IV, c.Msg)
				if err != nil {
					t.Errorf("tc %d: encrypt: %v", c.TcID, err)
				} else if !bytes.Equal(ct, append([]byte("x"), c.CT...)) {
					t.Errorf("tc %d: encrypt = %x, want x‖%x", c.TcID, ct, c.CT)
				}
			case "invalid":
				invalid++
				if !errors.Is(err, ErrDecrypt) {
					t.Errorf("tc %d (%s): err = %v, want ErrDecrypt", c.TcID, c.Comment, err)
				}
				if pt != nil {
					t.Errorf("tc %d: output returned on failure", c.TcID)
				}
			default:
				t.Fatalf("tc %d: unexpected result %q", c.TcID, c.Result)
			}
		}
	}
	checkCount(t, "aes_cbc_pkcs5", ran, f.NumberOfTests, 200)
	if valid < 60 || invalid < 130 || len(keySizes) != 3 {
		t.Errorf("valid=%d invalid=%d key sizes=%v", valid, invalid, keySizes)
	}
}

func TestWycheproofHKDF(t *testing.T) {
	type tc struct {
		wycheCase
		IKM  hexBytes `json:"ikm"`
		Salt hexBytes `json:"salt"`
		Info hexBytes `json:"info"`
		Size int      `json:"size"`
		OKM  hexBytes `json:"okm"`
	}
	f := loadWycheproof[tc](t, "hkdf_sha256_test.json", "HKDF-SHA-256")
	ran, tooLarge := 0, 0
	for _, g := range f.TestGroups {
		for _, c := range g.Tests {
			ran++
			out := make([]byte, c.Size)
			if c.Result == "invalid" {
				if !hasFlag(c.Flags, "SizeTooLarge") {
					t.Fatalf("tc %d: unexpected invalid vector %v", c.TcID, c.Flags)
				}
				tooLarge++
				func() {
					defer func() {
						if recover() == nil {
							t.Errorf("tc %d: HKDF of %d bytes did not panic", c.TcID, c.Size)
						}
					}()
					HKDF(out, c.IKM, c.Salt, c.Info)
				}()
				continue
			}
			HKDF(out, c.IKM, c.Salt, c.Info)
			if !bytes.Equal(out, c.OKM) {
				t.Errorf("tc %d (%s): okm = %x, want %x", c.TcID, c.Comment, out, c.OKM)
			}
		}
	}
	checkCount(t, "hkdf_sha256", ran, f.NumberOfTests, 80)
	if tooLarge != 3 {
		t.Errorf("%d SizeTooLarge vectors ran, want 3", tooLarge)
	}
}

func TestWycheproofHMAC(t *testing.T) {
	type tc struct {
		wycheCase
		Key hexBytes `json:"key"`
		Msg hexBytes `json:"msg"`
		Tag hexBytes `json:"tag"`
	}
	f := loadWycheproof[tc](t, "hmac_sha256_test.json", "HMACSHA256")
	ran, truncated := 0, 0
	for _, g := range f.TestGroups {
		if g.TagSize%8 != 0 || g.TagSize > 256 || g.TagSize == 0 {
			t.Fatalf("tag size %d", g.TagSize)
		}
		n := g.TagSize / 8
		if n < 32 {
			truncated += len(g.Tests)
		}
		for _, c := range g.Tests {
			ran++
			// Split the message to exercise the parts form too.
			half := len(c.Msg) / 2
			full := HMACSHA256([]byte("p"), c.Key, c.Msg[:half], nil, c.Msg[half:])
			if len(full) != 33 || full[0] != 'p' {
				t.Fatalf("tc %d: bad append: %x", c.TcID, full)
			}
			ok := len(c.Tag) == n && hmac.Equal(full[1:1+n], c.Tag)
			if ok != (c.Result == "valid") {
				t.Errorf("tc %d (%s): verified=%v, result %s", c.TcID, c.Comment, ok, c.Result)
			}
		}
	}
	checkCount(t, "hmac_sha256", ran, f.NumberOfTests, 170)
	if truncated == 0 {
		t.Error("no truncated-tag vectors ran")
	}
}
