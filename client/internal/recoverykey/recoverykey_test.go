package recoverykey

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// counting is the key 00 01 02 … 1f.
func counting() Key {
	var k Key
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

func testKeys(t *testing.T, n int) []Key {
	t.Helper()
	keys := []Key{{}, counting()}
	var ff Key
	for i := range ff {
		ff[i] = 0xFF
	}
	keys = append(keys, ff)
	for range n {
		k, err := New(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

var textForm = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){13}$`)

// refString computes the text form the slow, obvious way, from the
// package documentation: a string of bits, 5 at a time, and the check
// symbol from the sum Σ x^(55−i)·s[i] with a branching GF(32) multiply.
func refString(k Key) string {
	h := sha256.Sum256(append([]byte("veil recovery key v1"), k[:]...))
	var bits strings.Builder
	for _, b := range k {
		fmt.Fprintf(&bits, "%08b", b)
	}
	for _, b := range h[:3] {
		fmt.Fprintf(&bits, "%08b", b)
	}
	all := bits.String()[:256+19]
	var s []byte
	for i := 0; i < len(all); i += 5 {
		var v byte
		for _, c := range all[i : i+5] {
			v = v<<1 | byte(c-'0')
		}
		s = append(s, v)
	}
	gfMul := func(a, b byte) byte {
		var p byte
		for ; b != 0; b >>= 1 {
			if b&1 != 0 {
				p ^= a
			}
			a <<= 1
			if a&0x20 != 0 {
				a ^= 0x25
			}
		}
		return p
	}
	var sum byte
	pow := byte(1) // x^(55−i), walking i down from 54
	for i := len(s) - 1; i >= 0; i-- {
		pow = gfMul(pow, 2)
		sum ^= gfMul(pow, s[i])
	}
	s = append(s, sum) // c·x^0 = sum makes the total 0 (characteristic 2)
	var out strings.Builder
	for i, v := range s {
		if i > 0 && i%4 == 0 {
			out.WriteByte('-')
		}
		out.WriteByte("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[v])
	}
	return out.String()
}

func TestStringKnownAnswer(t *testing.T) {
	const want = "000G-40R4-0M30-E209-185G-R38E-1W81-24GK-2GAH-C5RR-34D1-P70X-3RFM-WP7F"
	if got := counting().String(); got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	if got := (Key{}).String(); got != "0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0006-964X" {
		t.Errorf("zero key String() = %s", got)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, k := range testKeys(t, 200) {
		s := k.String()
		if !textForm.MatchString(s) {
			t.Fatalf("String() = %q, not 14 groups of 4", s)
		}
		if ref := refString(k); s != ref {
			t.Fatalf("String() = %s, reference %s", s, ref)
		}
		p, err := Parse(s)
		if err != nil || !p.Equal(k) {
			t.Fatalf("Parse(%s) = %x, %v; want %x", s, p[:], err, k[:])
		}
	}
}

func TestParseTolerates(t *testing.T) {
	k := counting()
	s := k.String() // 000G-40R4-…
	compact := strings.ReplaceAll(s, "-", "")
	for _, v := range []string{
		strings.ToLower(s),
		compact,
		strings.ReplaceAll(s, "-", " "),
		strings.ReplaceAll(s, "-", " - "),
		"  " + strings.ReplaceAll(s, "-", "\n") + "\t\r\n",
		strings.ReplaceAll(strings.ReplaceAll(s, "0", "O"), "1", "I"),
		strings.ReplaceAll(strings.ReplaceAll(s, "0", "o"), "1", "l"),
		strings.ReplaceAll(s, "1", "L"),
		compact[:10] + "---" + compact[10:],
		strings.ReplaceAll(s, "-", "\u00a0"), // no-break space
	} {
		p, err := Parse(v)
		if err != nil || !p.Equal(k) {
			t.Errorf("Parse(%q) = %v; want the key", v, err)
		}
	}
}

func TestParseRefusals(t *testing.T) {
	s := counting().String()
	for _, c := range []struct {
		text string
		want error
	}{
		{"", ErrFormat},
		{s[:len(s)-1], ErrFormat},
		{s + "0", ErrFormat},
		{s + "-0000", ErrFormat},
		{strings.Replace(s, "G", "U", 1), ErrFormat},
		{strings.Replace(s, "G", "*", 1), ErrFormat},
		{strings.Replace(s, "G", "Ģ", 1), ErrFormat},
		{strings.Replace(s, "G", "\x00", 1), ErrFormat},
		{strings.Replace(s, "-", "_", 1), ErrFormat},
		{s + strings.Repeat(" ", 600), ErrFormat},
		{strings.Repeat("0", 56), ErrChecksum},
		{strings.Replace(s, "G", "H", 1), ErrChecksum},
	} {
		k, err := Parse(c.text)
		if !errors.Is(err, c.want) || k != (Key{}) {
			t.Errorf("Parse(%q) = %x, %v; want %v", c.text, k[:], err, c.want)
		}
	}
}

// same reports whether characters a and b mean the same thing to Parse.
func same(a, b byte) bool {
	canon := func(c byte) byte {
		switch c = byte(strings.ToUpper(string(c))[0]); c {
		case 'O':
			return '0'
		case 'I', 'L':
			return '1'
		}
		return c
	}
	return canon(a) == canon(b)
}

// TestEverySubstitution replaces each character of valid keys, in the
// compact and the grouped form, with every printable ASCII character and
// a few others: each result is refused with ErrChecksum or ErrFormat, or
// (aliases, case, one separator for another) parses to the same key —
// never to another key.
func TestEverySubstitution(t *testing.T) {
	var chars []byte
	for c := byte(0x20); c < 0x7F; c++ {
		chars = append(chars, c)
	}
	chars = append(chars, '\t', '\n', 0, 0xFF)
	for _, k := range testKeys(t, 20) {
		for _, s := range []string{k.String(), strings.ReplaceAll(k.String(), "-", "")} {
			for i := range len(s) {
				for _, c := range chars {
					if c == s[i] {
						continue
					}
					typo := s[:i] + string(c) + s[i+1:]
					p, err := Parse(typo)
					switch {
					case err == nil && p.Equal(k):
						isSep := func(c byte) bool { return c == '-' || c == ' ' || c == '\t' || c == '\n' }
						if !same(c, s[i]) && !(isSep(c) && isSep(s[i])) {
							t.Fatalf("Parse(%q) accepted %q for %q", typo, c, s[i])
						}
					case err == nil:
						t.Fatalf("Parse(%q) = another key: %s typo of %s", typo, p.String(), s)
					case !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrFormat):
						t.Fatalf("Parse(%q): %v", typo, err)
					case errors.Is(err, ErrChecksum) && p != (Key{}):
						t.Fatalf("Parse(%q) returned a key with its error", typo)
					}
				}
			}
		}
	}
}

// TestEveryTransposition swaps every pair of neighbours. In the compact
// form every swap that changes the text is refused; in the grouped form a
// symbol swapped with a dash is the same key again.
func TestEveryTransposition(t *testing.T) {
	for _, k := range testKeys(t, 200) {
		grouped := k.String()
		compact := strings.ReplaceAll(grouped, "-", "")
		for _, s := range []string{compact, grouped} {
			for i := 0; i+1 < len(s); i++ {
				if s[i] == s[i+1] {
					continue
				}
				swapped := s[:i] + string(s[i+1]) + string(s[i]) + s[i+2:]
				p, err := Parse(swapped)
				if err == nil && !(s[i] == '-' || s[i+1] == '-') {
					t.Fatalf("Parse(%q) accepted a swap at %d of %s", swapped, i, s)
				}
				if err == nil && !p.Equal(k) {
					t.Fatalf("Parse(%q) = another key", swapped)
				}
				if err != nil && !errors.Is(err, ErrChecksum) {
					t.Fatalf("Parse(%q): %v, want ErrChecksum", swapped, err)
				}
			}
		}
	}
}

// TestCheckSymbolAlone shows the guarantee comes from the check symbol,
// not from luck with the hash bits: for random symbol strings made valid
// by their check symbol, every single substitution and every swap of
// unequal neighbours leaves a non-zero Damm state.
func TestCheckSymbolAlone(t *testing.T) {
	for range 200 {
		var s [symbols]byte
		for i := range symbols - 1 {
			s[i] = byte(mrand.IntN(32))
		}
		s[symbols-1] = mulX(damm(s[:symbols-1]))
		if damm(s[:]) != 0 {
			t.Fatalf("check symbol does not zero the state: %v", s)
		}
		for i := range symbols {
			for e := byte(1); e < 32; e++ {
				t2 := s
				t2[i] ^= e
				if damm(t2[:]) == 0 {
					t.Fatalf("substitution at %d by +%d undetected", i, e)
				}
			}
			if i+1 < symbols && s[i] != s[i+1] {
				t2 := s
				t2[i], t2[i+1] = t2[i+1], t2[i]
				if damm(t2[:]) == 0 {
					t.Fatalf("swap at %d undetected", i)
				}
			}
		}
	}
}

// refHKDF is RFC 5869 written out with crypto/hmac, for one output block.
func refHKDF(secret []byte, info string) []byte {
	ext := hmac.New(sha256.New, make([]byte, sha256.Size))
	ext.Write(secret)
	prk := ext.Sum(nil)
	exp := hmac.New(sha256.New, prk)
	exp.Write([]byte(info))
	exp.Write([]byte{1})
	return exp.Sum(nil)
}

func TestDerive(t *testing.T) {
	k := counting()
	for _, c := range []struct{ purpose, want string }{
		{PurposeBackup, "469b7d6366e0ee10c08a8abff191bd70a14509e9b68487be85375564f5c3ff9a"},
		{PurposeRecoveryCredential, "d5c2b3e9113253a8c3cc84ca542889230b2853c9884520d31e6987e64f31315a"},
	} {
		got := k.Derive(c.purpose)
		if hex.EncodeToString(got[:]) != c.want {
			t.Errorf("Derive(%q) = %x, want %s", c.purpose, got, c.want)
		}
		if ref := refHKDF(k[:], "veil recovery key v1 "+c.purpose); !bytes.Equal(got[:], ref) {
			t.Errorf("Derive(%q) = %x, reference HKDF %x", c.purpose, got, ref)
		}
		if again := k.Derive(c.purpose); again != got {
			t.Errorf("Derive(%q) is not stable", c.purpose)
		}
	}
	seen := map[[32]byte]string{}
	for _, key := range testKeys(t, 5) {
		for _, p := range []string{PurposeBackup, PurposeRecoveryCredential, "", "backup ", "Backup"} {
			d := key.Derive(p)
			if prev, dup := seen[d]; dup {
				t.Fatalf("Derive(%q) of %x repeats %s", p, key[:4], prev)
			}
			if bytes.Equal(d[:], key[:]) {
				t.Fatalf("Derive(%q) returns the key itself", p)
			}
			seen[d] = fmt.Sprintf("%x/%q", key[:4], p)
		}
	}
}

func TestNew(t *testing.T) {
	a, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if a.Equal(b) || a == (Key{}) {
		t.Fatalf("New gave %x and %x", a[:], b[:])
	}
	c := counting()
	k, err := New(bytes.NewReader(c[:]))
	if err != nil || !k.Equal(counting()) {
		t.Fatalf("New(fixed reader) = %x, %v", k[:], err)
	}
	if _, err := New(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Fatal("New with a short reader succeeded")
	}
}

func TestFormatHidesKey(t *testing.T) {
	k := counting()
	s := k.String()
	type holder struct{ K Key }
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		for _, v := range []any{k, &k, holder{k}} {
			out := fmt.Sprintf(f, v)
			if strings.Contains(out, s[:9]) || strings.Contains(strings.ToLower(out), "000102030405") ||
				strings.Contains(out, "0 1 2 3 4 5") {
				t.Errorf("Sprintf(%q, %T) leaks the key: %s", f, v, out)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(counting().String())
	f.Add(strings.ToLower(counting().String()))
	f.Add("oooo oooo 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000 0006 964x")
	f.Add(strings.Repeat("0", 56))
	f.Fuzz(func(t *testing.T, text string) {
		k, err := Parse(text)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrChecksum) {
				t.Fatalf("Parse: unexpected error %v", err)
			}
			if k != (Key{}) {
				t.Fatalf("Parse returned a key with an error")
			}
			return
		}
		// One key, one text up to case, separators and aliases.
		var norm strings.Builder
		for _, r := range strings.ToUpper(text) {
			switch r {
			case '-':
			case 'O':
				norm.WriteByte('0')
			case 'I', 'L':
				norm.WriteByte('1')
			default:
				if !unicode.IsSpace(r) {
					norm.WriteRune(r)
				}
			}
		}
		if got, want := norm.String(), strings.ReplaceAll(k.String(), "-", ""); got != want {
			t.Fatalf("Parse(%q) = key %s, not the same text", text, want)
		}
		p, err := Parse(k.String())
		if err != nil || !p.Equal(k) {
			t.Fatalf("round trip of %s: %v", k.String(), err)
		}
	})
}
