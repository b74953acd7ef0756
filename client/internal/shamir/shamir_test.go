package shamir

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// refMul is textbook GF(2^8) multiplication with branches, as a reference
// for mul.
func refMul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		if a&0x80 != 0 {
			a = a<<1 ^ 0x1B
		} else {
			a <<= 1
		}
		b >>= 1
	}
	return p
}

func TestField(t *testing.T) {
	// FIPS-197 §4.2 and the S-box construction's example inverse.
	if got := mul(0x57, 0x83); got != 0xC1 {
		t.Errorf("mul(0x57, 0x83) = %#x, want 0xc1", got)
	}
	if got := mul(0x57, 0x13); got != 0xFE {
		t.Errorf("mul(0x57, 0x13) = %#x, want 0xfe", got)
	}
	if got := inv(0x53); got != 0xCA {
		t.Errorf("inv(0x53) = %#x, want 0xca", got)
	}
	for a := range 256 {
		for b := range 256 {
			if got, want := mul(byte(a), byte(b)), refMul(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%#x, %#x) = %#x, want %#x", a, b, got, want)
			}
		}
		if a != 0 && mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("%#x · inv(%#x) ≠ 1", a, a)
		}
	}
}

func mustSplit(t *testing.T, secret []byte, k, n int) []Share {
	t.Helper()
	shares, err := Split(secret, k, n, rand.Reader)
	if err != nil {
		t.Fatalf("Split(%d bytes, %d, %d): %v", len(secret), k, n, err)
	}
	if len(shares) != n {
		t.Fatalf("Split gave %d shares, want %d", len(shares), n)
	}
	return shares
}

// subsets calls f with every subset of shares, in index order.
func subsets(shares []Share, f func([]Share)) {
	for mask := 1; mask < 1<<len(shares); mask++ {
		var sub []Share
		for i, s := range shares {
			if mask&(1<<i) != 0 {
				sub = append(sub, s)
			}
		}
		f(sub)
	}
}

func TestThreeOfFiveEveryCombination(t *testing.T) {
	secret := []byte("correct horse battery staple, 32")
	shares := mustSplit(t, secret, 3, 5)
	subsets(shares, func(sub []Share) {
		for _, order := range [][]Share{sub, reversed(sub)} {
			got, err := Combine(order)
			if len(sub) < 3 {
				if !errors.Is(err, ErrTooFew) || got != nil {
					t.Errorf("Combine(%d shares) = %q, %v; want ErrTooFew", len(sub), got, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(got, secret) {
				t.Errorf("Combine(%v) = %q, %v; want the secret", indices(order), got, err)
			}
		}
	})
}

func reversed(s []Share) []Share {
	r := make([]Share, len(s))
	for i := range s {
		r[len(s)-1-i] = s[i]
	}
	return r
}

func indices(s []Share) []byte {
	var x []byte
	for _, sh := range s {
		x = append(x, sh.Index)
	}
	return x
}

// TestTwoOfThreeRevealNothing is the secrecy proof for k = 3, mechanised:
// for a one-byte secret and two fixed indices, it runs through all 256²
// choices of the two random coefficients and checks that the pair of
// share values takes every one of its 256² possible values exactly once,
// whatever the secret. The distribution of what two shareholders see is
// then uniform, the same for every secret, so it says nothing about it.
func TestTwoOfThreeRevealNothing(t *testing.T) {
	pairs := [][2]byte{{1, 2}, {3, 200}, {254, 255}}
	if testing.Short() {
		pairs = pairs[:1]
	}
	for _, p := range pairs {
		x1, x2 := p[0], p[1]
		for s := range 256 {
			var seen [1 << 16]bool
			for a1 := range 256 {
				for a2 := range 256 {
					c := []byte{byte(s), byte(a1), byte(a2)}
					y := int(eval(c, x1))<<8 | int(eval(c, x2))
					if seen[y] {
						t.Fatalf("indices %d,%d secret %#x: share values %#04x occur twice", x1, x2, s, y)
					}
					seen[y] = true
				}
			}
		}
	}
}

// TestOneOfTwoRevealsNothing is the same proof for k = 2 and one share.
func TestOneOfTwoRevealsNothing(t *testing.T) {
	for x := 1; x < 256; x++ {
		for s := range 256 {
			var seen [256]bool
			for a1 := range 256 {
				y := eval([]byte{byte(s), byte(a1)}, byte(x))
				if seen[y] {
					t.Fatalf("index %d secret %#x: value %#x occurs twice", x, s, y)
				}
				seen[y] = true
			}
		}
	}
}

// TestSplitUsesRandomness pins how Split consumes its reader: the set id,
// then k−1 coefficients per secret byte.
func TestSplitUsesRandomness(t *testing.T) {
	r := bytes.NewReader([]byte{
		0xA1, 0xA2, 0xA3, 0xA4, // set id
		0x10, 0x20, // byte 0: c1, c2
		0x30, 0x40, // byte 1: c1, c2
	})
	shares, err := Split([]byte{0x55, 0x66}, 3, 4, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shares {
		if s.Set != (SetID{0xA1, 0xA2, 0xA3, 0xA4}) || s.Threshold != 3 {
			t.Fatalf("share %d: set %x, threshold %d", s.Index, s.Set, s.Threshold)
		}
		want := []byte{eval([]byte{0x55, 0x10, 0x20}, s.Index), eval([]byte{0x66, 0x30, 0x40}, s.Index)}
		if !bytes.Equal(s.Data, want) {
			t.Errorf("share %d = %x, want %x", s.Index, s.Data, want)
		}
	}
	if _, err := Split([]byte{1, 2}, 3, 4, bytes.NewReader(make([]byte, 7))); err == nil {
		t.Error("Split with a short reader succeeded")
	}
}

func TestRoundTrips(t *testing.T) {
	for _, kn := range [][2]int{{2, 2}, {2, 3}, {2, 255}, {5, 5}, {3, 5}, {17, 255}, {255, 255}} {
		k, n := kn[0], kn[1]
		t.Run(fmt.Sprintf("%dof%d", k, n), func(t *testing.T) {
			for l := 1; l <= 64; l++ {
				if k*n > 1000 && l%16 != 1 {
					continue // keep the big ones quick
				}
				secret := make([]byte, l)
				rand.Read(secret)
				shares := mustSplit(t, secret, k, n)
				perm := mrand.Perm(n)
				pick := make([]Share, k)
				for i := range pick {
					pick[i] = shares[perm[i]]
				}
				got, err := Combine(pick)
				if err != nil || !bytes.Equal(got, secret) {
					t.Fatalf("len %d: Combine(%v) = %x, %v; want %x", l, indices(pick), got, err, secret)
				}
				if _, err := Combine(pick[:k-1]); !errors.Is(err, ErrTooFew) {
					t.Fatalf("len %d: Combine of k−1 shares: %v, want ErrTooFew", l, err)
				}
				if l == 1 || l == 64 {
					got, err := Combine(shares)
					if err != nil || !bytes.Equal(got, secret) {
						t.Fatalf("len %d: Combine(all) = %x, %v", l, got, err)
					}
				}
			}
		})
	}
}

func TestSplitRefusals(t *testing.T) {
	for _, c := range []struct {
		secret []byte
		k, n   int
	}{
		{[]byte{1}, 1, 5},
		{[]byte{1}, 0, 5},
		{[]byte{1}, -3, 5},
		{[]byte{1}, 4, 3},
		{[]byte{1}, 3, 256},
		{[]byte{1}, 256, 256},
		{nil, 2, 3},
	} {
		if s, err := Split(c.secret, c.k, c.n, rand.Reader); !errors.Is(err, ErrParams) || s != nil {
			t.Errorf("Split(%x, %d, %d) = %v, %v; want ErrParams", c.secret, c.k, c.n, s, err)
		}
	}
}

func clone(s []Share) []Share {
	c := make([]Share, len(s))
	for i, sh := range s {
		sh.Data = bytes.Clone(sh.Data)
		c[i] = sh
	}
	return c
}

func TestCombineRefusals(t *testing.T) {
	secret := []byte("a secret of some length")
	a := mustSplit(t, secret, 3, 5)
	b := mustSplit(t, secret, 3, 5)
	for _, c := range []struct {
		name   string
		shares func() []Share
		want   error
	}{
		{"none", func() []Share { return nil }, ErrTooFew},
		{"two", func() []Share { return a[:2] }, ErrTooFew},
		{"other set", func() []Share { return []Share{a[0], a[1], b[2]} }, ErrMismatch},
		{"other set same index", func() []Share { return []Share{a[0], a[1], b[1]} }, ErrMismatch},
		{"duplicate", func() []Share { return []Share{a[0], a[1], a[1]} }, ErrDuplicate},
		{"duplicate index other data", func() []Share {
			s := clone(a[:3])
			s[2].Index = s[0].Index
			return s
		}, ErrDuplicate},
		{"zero index", func() []Share {
			s := clone(a[:3])
			s[1].Index = 0
			return s
		}, ErrInvalidShare},
		{"threshold differs", func() []Share {
			s := clone(a[:3])
			s[2].Threshold = 2
			return s
		}, ErrMismatch},
		{"threshold 1", func() []Share {
			s := clone(a[:3])
			for i := range s {
				s[i].Threshold = 1
			}
			return s
		}, ErrInvalidShare},
		{"lengths differ", func() []Share {
			s := clone(a[:3])
			s[1].Data = s[1].Data[:len(s[1].Data)-1]
			return s
		}, ErrMismatch},
		{"empty data", func() []Share {
			s := clone(a[:3])
			for i := range s {
				s[i].Data = nil
			}
			return s
		}, ErrInvalidShare},
		{"damaged extra share", func() []Share {
			s := clone(a[:4])
			s[3].Data[5] ^= 1
			return s
		}, ErrInconsistent},
	} {
		got, err := Combine(c.shares())
		if !errors.Is(err, c.want) || got != nil {
			t.Errorf("%s: Combine = %q, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestShareStringHidesData(t *testing.T) {
	s := Share{Index: 7, Threshold: 3, Set: SetID{1, 2, 3, 4}, Data: []byte("SECRETDATA")}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(f, s)
		if strings.Contains(out, "SECRETDATA") || strings.Contains(out, fmt.Sprintf("%x", s.Data)) ||
			strings.Contains(out, fmt.Sprint([]byte("SECRETDATA"))) {
			t.Errorf("%s prints the data: %s", f, out)
		}
		if !strings.Contains(out, "Index: 7") {
			t.Errorf("%s: %s lacks the index", f, out)
		}
	}
}

func TestEncodeParse(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	shares := mustSplit(t, secret, 3, 5)
	var parsed []Share
	for _, s := range shares {
		text := s.Encode()
		if !strings.HasPrefix(text, fmt.Sprintf("veil-share-1-%d-3-", s.Index)) || strings.ToLower(text) != text {
			t.Fatalf("Encode = %q", text)
		}
		// People copy by hand: shouting, spaces and line breaks are fine.
		for _, variant := range []string{text, strings.ToUpper(text), spaced(text), "  " + text + "\n"} {
			p, err := ParseShare(variant)
			if err != nil {
				t.Fatalf("ParseShare(%q): %v", variant, err)
			}
			if p.Index != s.Index || p.Threshold != s.Threshold || p.Set != s.Set || !bytes.Equal(p.Data, s.Data) {
				t.Fatalf("ParseShare(%q) = %+v, want %+v", variant, p, s)
			}
		}
		p, _ := ParseShare(text)
		parsed = append(parsed, p)
	}
	got, err := Combine(parsed[1:4])
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Combine(parsed) = %x, %v", got, err)
	}
}

// spaced breaks text into groups of five, with a line break every so
// often, as someone might write it down.
func spaced(text string) string {
	var b strings.Builder
	for i, r := range text {
		if i > 0 && i%5 == 0 {
			b.WriteByte(' ')
		}
		if i > 0 && i%40 == 0 {
			b.WriteString("\n\t")
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestParseShareTypos changes every character of an encoded share to every
// other plausible character, and swaps every adjacent pair: each must be
// refused, never parsed as a different share.
func TestParseShareTypos(t *testing.T) {
	s := mustSplit(t, []byte("sixteen byte key"), 2, 3)[1]
	text := s.Encode()
	check := func(typo string) {
		t.Helper()
		p, err := ParseShare(typo)
		if err == nil {
			t.Fatalf("ParseShare(%q) accepted a typo of %q: %+v", typo, text, p)
		}
		if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrFormat) {
			t.Fatalf("ParseShare(%q): %v, want ErrChecksum or ErrFormat", typo, err)
		}
	}
	const chars = "0123456789abcdefghijklmnopqrstuvwxyz-_."
	for i := range len(text) {
		for _, c := range []byte(chars) {
			if c != text[i] {
				check(text[:i] + string(c) + text[i+1:])
			}
		}
		check(text[:i] + text[i+1:])
		if i+1 < len(text) && text[i] != text[i+1] {
			check(text[:i] + string(text[i+1]) + string(text[i]) + text[i+2:])
		}
	}
}

func TestParseShareRefusals(t *testing.T) {
	good := Share{Index: 3, Threshold: 2, Set: SetID{9, 8, 7, 6}, Data: []byte{1, 2, 3}}
	// withSum completes body with its correct checksum.
	withSum := func(body string) string { return body + "-" + checksumOf(body) }
	for _, c := range []struct {
		text string
		want error
	}{
		{"", ErrFormat},
		{"veil-share-1-", ErrFormat},
		{"veil-share-2-3-2-1440e1g-04106-abcdefg", ErrFormat},
		{good.Encode() + "-", ErrFormat},
		{good.Encode() + "0", ErrFormat},
		{strings.Replace(good.Encode(), "veil", "véil", 1), ErrFormat},
		{withSum("veil-share-1-0-2-1440e1g-04106"), ErrFormat},   // index 0
		{withSum("veil-share-1-256-2-1440e1g-04106"), ErrFormat}, // index too big
		{withSum("veil-share-1-03-2-1440e1g-04106"), ErrFormat},  // leading zero
		{withSum("veil-share-1-+3-2-1440e1g-04106"), ErrFormat},  // sign
		{withSum("veil-share-1-3-1-1440e1g-04106"), ErrFormat},   // k = 1
		{withSum("veil-share-1-3-256-1440e1g-04106"), ErrFormat}, // k too big
		{withSum("veil-share-1-3-2-1440e1-04106"), ErrFormat},    // short set id
		{withSum("veil-share-1-3-2-1440e1h-04106"), ErrFormat},   // set id padding bits set
		{withSum("veil-share-1-3-2-1440e1g-04107"), ErrFormat},   // data padding bits set
		{withSum("veil-share-1-3-2-1440e1g-041"), ErrFormat},     // data length no encoding has
		{withSum("veil-share-1-3-2-1440e1g-"), ErrFormat},        // no data
		{withSum("veil-share-1-3-2-1440e1g-0410u"), ErrFormat},   // u is not in the alphabet
		{withSum("veil-share-1-3-2-1440e1g-04106-x"), ErrFormat}, // extra field
		{"veil-share-1-3-2-1440e1g-04106-0000000", ErrChecksum},  // wrong checksum
		{withSum("veil-share-1-3-2-1440e1g-04106")[:38] + "0", ErrFormat},
	} {
		s, err := ParseShare(c.text)
		if !errors.Is(err, c.want) {
			t.Errorf("ParseShare(%q) = %+v, %v; want %v", c.text, s, err, c.want)
		}
	}
	// The valid body used above really is good's encoding.
	if got, want := withSum("veil-share-1-3-2-1440e1g-04106"), good.Encode(); got != want {
		t.Fatalf("test fixture %q, Encode %q", got, want)
	}
}

func checksumOf(body string) string {
	sum := sha256.Sum256([]byte(body))
	return string(encode32(sum[:checksumLen]))
}

func TestEncode32(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte{0}, "00"},
		{[]byte{0xFF}, "zw"},
		{[]byte("foobar"), "csqpyrk1e8"},
		{[]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, "zzzzzzzz"},
	} {
		if got := string(encode32(c.in)); got != c.want {
			t.Errorf("encode32(%x) = %q, want %q", c.in, got, c.want)
		}
		got, ok := decode32(c.want)
		if !ok || !bytes.Equal(got, c.in) {
			t.Errorf("decode32(%q) = %x, %v", c.want, got, ok)
		}
	}
}

func TestProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		secret := rapid.SliceOfN(rapid.Byte(), 1, 80).Draw(t, "secret")
		n := rapid.IntRange(2, 40).Draw(t, "n")
		k := rapid.IntRange(2, n).Draw(t, "k")
		shares, err := Split(secret, k, n, rand.Reader)
		if err != nil {
			t.Fatalf("Split: %v", err)
		}
		perm := rapid.Permutation(shares).Draw(t, "order")
		m := rapid.IntRange(1, n).Draw(t, "m")
		pick := perm[:m]
		if rapid.Bool().Draw(t, "via text") {
			for i, s := range pick {
				p, err := ParseShare(s.Encode())
				if err != nil {
					t.Fatalf("ParseShare(Encode): %v", err)
				}
				pick[i] = p
			}
		}
		got, err := Combine(pick)
		if m < k {
			if !errors.Is(err, ErrTooFew) || got != nil {
				t.Fatalf("Combine(%d of k=%d) = %x, %v; want ErrTooFew", m, k, got, err)
			}
			return
		}
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("Combine(%d of k=%d) = %x, %v; want %x", m, k, got, err, secret)
		}
	})
}

func FuzzParseShare(f *testing.F) {
	f.Add("veil-share-1-3-2-1440e1g-04106-" + checksumOf("veil-share-1-3-2-1440e1g-04106"))
	f.Add("VEIL-SHARE-1-1-3-00000 00-zzzz-0000000")
	f.Add("veil-share-1-")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseShare(text)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrChecksum) {
				t.Fatalf("ParseShare: unexpected error %v", err)
			}
			return
		}
		// One share, one encoding (up to case and white space).
		norm := strings.Join(strings.Fields(strings.ToLower(text)), "")
		if enc := s.Encode(); enc != norm {
			t.Fatalf("ParseShare(%q) re-encodes to %q", text, enc)
		}
		if s.Index == 0 || s.Threshold < 2 || s.Threshold > MaxShares || len(s.Data) == 0 {
			t.Fatalf("ParseShare(%q) accepted an invalid share %+v", text, s)
		}
	})
}
