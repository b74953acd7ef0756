// Package tokenize splits message text into the search terms of the
// device store's full-text index. The same function runs on documents
// and on queries, so the index and the query parser agree on terms.
//
// # Scripts
//
// Text is read as UTF-8 (invalid bytes separate terms).
//
//   - Spaced scripts — Latin (English, French, German, Spanish…), Greek,
//     Cyrillic, Arabic, Hebrew, Armenian, Georgian, Devanagari and every
//     other script not listed below: a term is a maximal run of letters,
//     digits and combining marks. Terms are case-folded (Unicode simple
//     lowercase, final sigma as sigma, ß as ss), compatibility-normalised
//     (NFKD: ligatures, fullwidth forms) and stripped of nonspacing marks
//     (diacritics: é→e, ё→е, ά→α, Arabic harakat, Hebrew niqqud).
//   - Scripts written without spaces — Han, Hiragana, Katakana (with the
//     prolonged sound mark), Hangul, Thai, Lao, Khmer and Myanmar: each
//     character is a term of its own (a unigram); their nonspacing marks
//     (Thai tone marks…) are dropped. A word in these scripts is found as
//     the phrase of its characters, so 東京 matches 東京都 but not 京東.
//     Halfwidth forms are widened first.
//   - Emoji and other symbols (category So) are a term each, so 🎉 is
//     searchable; modifiers, joiners and variation selectors are not
//     terms.
//
// Everything else (punctuation, spaces, control characters) separates
// terms and is not indexed.
//
// Terms are idempotent: tokenizing a term, or terms joined by spaces,
// gives the same terms back.
package tokenize

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxTermBytes caps a term's length: a longer run of word characters is
// cut into terms of at most this many bytes (at a character boundary), so
// one long string cannot bloat the index.
const MaxTermBytes = 64

// Emit receives one term: its folded text and the byte range [start, end)
// of the input it came from. When the term is unchanged by folding, term
// is the substring text[start:end] (no copy). A non-nil error stops
// tokenizing and is returned.
type Emit func(term string, start, end int) error

// Tokenize splits text into terms and calls emit for each, in order.
func Tokenize(text string, emit Emit) error {
	var t tokenizer
	return t.run(text, emit)
}

// Terms returns the terms of text (for tests and the query parser).
func Terms(text string) []string {
	var out []string
	Tokenize(text, func(term string, _, _ int) error {
		out = append(out, strings.Clone(term))
		return nil
	})
	return out
}

type tokenizer struct {
	buf    []byte
	nested bool // tokenizing folded text: do not fold again
}

// class of a character.
const (
	sep     = iota // separates terms
	word           // part of a spaced-script term
	mark           // a combining mark: part of a term, never starts one
	unigram        // a term by itself (scripts without spaces)
	symbol         // a term by itself (emoji)
)

var asciiClass [128]uint8

func init() {
	for c := '0'; c <= '9'; c++ {
		asciiClass[c] = word
	}
	for c := 'a'; c <= 'z'; c++ {
		asciiClass[c] = word
		asciiClass[c-'a'+'A'] = word
	}
}

var unigramScripts = []*unicode.RangeTable{
	unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul,
	unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar,
}

func classify(r rune) uint8 {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	if r == utf8.RuneError {
		return sep
	}
	if r == 0x30FC || r == 0xFF70 { // ー, ｰ: prolonged sound mark (script Common)
		return unigram
	}
	if unicode.In(r, unicode.Mn, unicode.Me) {
		return mark
	}
	if unicode.In(r, unigramScripts...) {
		if unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mc, r) {
			return unigram
		}
		return sep
	}
	if unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mc, r) {
		if r >= 0xFF00 && r <= 0xFFEF { // halfwidth/fullwidth forms: classify what they stand for
			if n := []rune(norm.NFKC.String(string(r))); len(n) == 1 && n[0] != r {
				return classify(n[0])
			}
		}
		return word
	}
	if unicode.Is(unicode.So, r) {
		return symbol
	}
	return sep
}

func (t *tokenizer) run(text string, emit Emit) error {
	i := 0
	for i < len(text) {
		c := text[i]
		if c < utf8.RuneSelf {
			if asciiClass[c] == sep {
				i++
				continue
			}
			// A word: scan ASCII fast, switch to the general path at the
			// first non-ASCII byte.
			start, lower, j := i, true, i
			for j < len(text) && text[j] < utf8.RuneSelf && asciiClass[text[j]] != sep && j-start < MaxTermBytes {
				if text[j] >= 'A' && text[j] <= 'Z' {
					lower = false
				}
				j++
			}
			if j < len(text) && text[j] >= utf8.RuneSelf && j-start < MaxTermBytes {
				if cl := classify(firstRune(text[j:])); cl == word || cl == mark {
					n, err := t.word(text, start, emit)
					if err != nil {
						return err
					}
					i = n
					continue
				}
			}
			if err := t.emitASCII(text, start, j, lower, emit); err != nil {
				return err
			}
			i = j
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		switch classify(r) {
		case word:
			n, err := t.word(text, i, emit)
			if err != nil {
				return err
			}
			i = n
		case unigram:
			end := i + size
			for end < len(text) { // keep trailing marks in the range (for snippets)
				r2, s2 := utf8.DecodeRuneInString(text[end:])
				if classify(r2) != mark {
					break
				}
				end += s2
			}
			if err := t.emitUnigram(r, text[i:i+size], i, end, emit); err != nil {
				return err
			}
			i = end
		case symbol:
			if err := emit(text[i:i+size], i, i+size); err != nil {
				return err
			}
			i += size
		default: // sep, or a mark with nothing to attach to
			i += size
		}
	}
	return nil
}

// emitUnigram emits one character of a script without spaces. Only
// halfwidth forms and CJK compatibility ideographs are normalised (NFKC,
// one character); NFKD would split Hangul syllables into jamo.
func (t *tokenizer) emitUnigram(r rune, s string, start, end int, emit Emit) error {
	if (r >= 0xF900 && r <= 0xFAFF) || (r >= 0xFF00 && r <= 0xFFEF) || (r >= 0x2F800 && r <= 0x2FA1F) {
		if n := norm.NFKC.String(s); utf8.RuneCountInString(n) == 1 && classify(firstRune(n)) == unigram {
			return emit(n, start, end)
		}
	}
	return emit(s, start, end)
}

func firstRune(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

func (t *tokenizer) emitASCII(text string, start, end int, lower bool, emit Emit) error {
	if lower {
		return emit(text[start:end], start, end)
	}
	t.buf = t.buf[:0]
	for k := start; k < end; k++ {
		c := text[k]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		t.buf = append(t.buf, c)
	}
	return emit(string(t.buf), start, end)
}

// word reads a spaced-script term starting at start (which may begin
// with ASCII) and emits it folded; it returns where the term ends.
func (t *tokenizer) word(text string, start int, emit Emit) (int, error) {
	j := start
	for j < len(text) {
		r, size := utf8.DecodeRuneInString(text[j:])
		cl := classify(r)
		if cl != word && cl != mark {
			break
		}
		if j+size-start > MaxTermBytes && j > start {
			break
		}
		j += size
	}
	return j, t.emitFolded(text[start:j], start, j, emit)
}

// emitFolded folds s (NFKD, nonspacing marks dropped, lowercase) and
// emits the result if anything is left. The folded form may itself
// contain several terms (a fullwidth "Ａ１" or a ligature), so it is
// tokenized again; folding is idempotent, so that ends at once.
func (t *tokenizer) emitFolded(s string, start, end int, emit Emit) error {
	t.buf = t.buf[:0]
	var it norm.Iter
	it.InitString(norm.NFKD, s)
	for !it.Done() {
		seg := it.Next()
		for k := 0; k < len(seg); {
			r, size := utf8.DecodeRune(seg[k:])
			k += size
			if unicode.In(r, unicode.Mn, unicode.Me) {
				continue
			}
			switch r {
			case 'ς':
				r = 'σ'
			case 'ß':
				t.buf = append(t.buf, "ss"...)
				continue
			default:
				r = unicode.ToLower(r)
			}
			t.buf = utf8.AppendRune(t.buf, r)
		}
	}
	if len(t.buf) == 0 {
		return nil
	}
	folded := string(t.buf)
	if folded == s || t.nested {
		return emit(folded, start, end)
	}
	// Re-split the folded text: everything it yields comes from this
	// input range.
	sub := tokenizer{nested: true}
	return sub.runFolded(folded, start, end, emit)
}

// runFolded tokenizes already folded text whose terms all map to the
// input range [start, end). Folded text folds to itself, so no term
// recurses again.
func (t *tokenizer) runFolded(folded string, start, end int, emit Emit) error {
	return t.run(folded, func(term string, _, _ int) error {
		return emit(strings.Clone(term), start, end)
	})
}
