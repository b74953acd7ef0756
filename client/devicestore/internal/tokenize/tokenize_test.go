package tokenize

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTerms(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"Hello, World! 42", []string{"hello", "world", "42"}},
		{"Crème brûlée à Noël", []string{"creme", "brulee", "a", "noel"}},
		{"Straße GRÜSSE Über", []string{"strasse", "grusse", "uber"}},
		{"¿Cómo estás, señor?", []string{"como", "estas", "senor"}},
		{"Привет, Ёжик!", []string{"привет", "ежик"}},
		{"Καλημέρα ΟΔΥΣΣΕΥΣ", []string{"καλημερα", "οδυσσευσ"}},
		{"مَرْحَبًا بالعالم", []string{"مرحبا", "بالعالم"}},
		{"שָׁלוֹם עולם", []string{"שלום", "עולם"}},
		{"東京都に行く", []string{"東", "京", "都", "に", "行", "く"}},
		{"コーヒー", []string{"コ", "ー", "ヒ", "ー"}},
		{"ｺｰﾋｰ", []string{"コ", "ー", "ヒ", "ー"}},
		{"서울에서 만나요", []string{"서", "울", "에", "서", "만", "나", "요"}},
		{"สวัสดีครับ", []string{"ส", "ว", "ส", "ด", "ค", "ร", "บ"}},
		{"party 🎉 time 👍🏽!", []string{"party", "🎉", "time", "👍"}},
		{"ﬁne Ｔｏｋｙｏ１２", []string{"fine", "tokyo12"}},
		{"abc東京def", []string{"abc", "東", "京", "def"}},
		{"don't", []string{"don", "t"}},
		{"\xff\xfeabc\x00déf", []string{"abc", "def"}},
		{strings.Repeat("a", 70), []string{strings.Repeat("a", 64), "aaaaaa"}},
	} {
		if got := Terms(c.in); !slices.Equal(got, c.want) {
			t.Errorf("Terms(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestOffsets: every term's range lies inside the input, in order.
func TestOffsets(t *testing.T) {
	in := "Ａb Crème 東京 🎉 x"
	last := 0
	Tokenize(in, func(term string, start, end int) error {
		if start < last || end <= start || end > len(in) {
			t.Errorf("term %q at [%d,%d) after %d", term, start, end, last)
		}
		last = end
		return nil
	})
}

func checkTokenize(t *testing.T, in string) {
	var terms []string
	last := 0
	err := Tokenize(in, func(term string, start, end int) error {
		if start < last || end <= start || end > len(in) {
			t.Fatalf("%q: term %q at [%d,%d) after %d", in, term, start, end, last)
		}
		if term == "" || !utf8.ValidString(term) {
			t.Fatalf("%q: bad term %q", in, term)
		}
		last = start
		terms = append(terms, strings.Clone(term))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Idempotence: the terms, joined, give themselves back (the query
	// parser relies on it).
	if again := Terms(strings.Join(terms, " ")); !slices.Equal(again, terms) {
		t.Fatalf("%q: terms %q re-tokenize to %q", in, terms, again)
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"Hello, World", "Crème brûlée", "東京都", "สวัสดี", "👍🏽", "ﬁ Ｔ", "ΣΑΣ", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { checkTokenize(t, in) })
}

func BenchmarkTokenize(b *testing.B) {
	text := "Hey, are we still on for dinner tonight at 7? I booked the Italian place near the station."
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Tokenize(text, func(string, int, int) error { return nil })
	}
}
