package tokenize

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// QueryError is a user query that cannot be searched. Reason says why
// and never quotes the query.
type QueryError struct{ Reason string }

func (e *QueryError) Error() string { return e.Reason }

// Query limits.
const (
	MaxQueryBytes = 1024
	MaxQueryTerms = 64
	MaxQueryDepth = 16
)

// ParseQuery turns a user's search text into an FTS5 MATCH expression
// in which every term is a quoted string of folded terms (so no user
// text reaches FTS5's own syntax). The user syntax:
//
//	word  "phrase"  prefix*  "phrase prefix"*  a AND b  a b  a OR b
//	a NOT b  -b  NOT b  ( … )
//
// Operators are recognised in capitals only; AND binds tighter than OR;
// adjacent items are ANDed; a negated item must have a positive item in
// the same AND group. A word that folds to several terms (東京, e-mail)
// becomes the phrase of those terms. Items with no terms (punctuation)
// are left out.
func ParseQuery(text string) (string, error) {
	if len(text) > MaxQueryBytes {
		return "", &QueryError{"query too long"}
	}
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, " ")
	}
	p := parser{toks: lex(text)}
	n, err := p.or(0)
	if err != nil {
		return "", err
	}
	if p.pos < len(p.toks) {
		if p.toks[p.pos].kind == tClose {
			return "", &QueryError{"unbalanced parentheses"}
		}
		return "", &QueryError{"unexpected operator"}
	}
	if n == nil {
		return "", &QueryError{"no searchable words"}
	}
	if p.terms > MaxQueryTerms {
		return "", &QueryError{"too many terms"}
	}
	if err := n.check(); err != nil {
		return "", err
	}
	var b strings.Builder
	n.write(&b)
	return b.String(), nil
}

type tokKind int

const (
	tWord tokKind = iota
	tPhrase
	tOpen
	tClose
	tAnd
	tOr
	tNot // the word NOT
	tMinus
	tBadQuote
)

type token struct {
	kind   tokKind
	text   string
	prefix bool
}

func lex(s string) []token {
	var out []token
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsSpace(r):
			i += size
		case r == '(':
			out = append(out, token{kind: tOpen})
			i++
		case r == ')':
			out = append(out, token{kind: tClose})
			i++
		case r == '"':
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				out = append(out, token{kind: tBadQuote})
				return out
			}
			t := token{kind: tPhrase, text: s[i+1 : i+1+end]}
			i += end + 2
			if i < len(s) && s[i] == '*' {
				t.prefix = true
				i++
			}
			out = append(out, t)
		case r == '-' && (i+1 < len(s) && !unicode.IsSpace(firstRune(s[i+1:]))):
			out = append(out, token{kind: tMinus})
			i++
		default:
			j := i
			for j < len(s) {
				r, size := utf8.DecodeRuneInString(s[j:])
				if unicode.IsSpace(r) || r == '(' || r == ')' || r == '"' {
					break
				}
				j += size
			}
			w := s[i:j]
			i = j
			switch w {
			case "AND":
				out = append(out, token{kind: tAnd})
			case "OR":
				out = append(out, token{kind: tOr})
			case "NOT":
				out = append(out, token{kind: tNot})
			default:
				t := token{kind: tWord, text: w}
				if strings.HasSuffix(w, "*") {
					t.text = strings.TrimRight(w, "*")
					t.prefix = true
				}
				out = append(out, t)
			}
		}
	}
	return out
}

type nodeKind int

const (
	nTerm nodeKind = iota
	nAnd
	nOr
)

// node of a parsed query. A nil *node is an item with no terms.
type node struct {
	kind   nodeKind
	terms  []string // nTerm: a phrase of one or more terms
	prefix bool     // nTerm: the last term is a prefix
	kids   []*node  // nAnd: the positive items; nOr: the alternatives
	not    []*node  // nAnd: the negated items
}

type parser struct {
	toks  []token
	pos   int
	terms int
}

func (p *parser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

// or := and (OR and)*
func (p *parser) or(depth int) (*node, error) {
	var alts []*node
	for {
		n, items, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		if n != nil {
			alts = append(alts, n)
		}
		t, ok := p.peek()
		if !ok || t.kind != tOr {
			break
		}
		if items == 0 {
			return nil, &QueryError{"OR without a left-hand side"}
		}
		p.pos++
		if t, ok := p.peek(); !ok || t.kind == tOr || t.kind == tAnd || t.kind == tClose {
			return nil, &QueryError{"OR without a right-hand side"}
		}
	}
	switch len(alts) {
	case 0:
		return nil, nil
	case 1:
		return alts[0], nil
	}
	return &node{kind: nOr, kids: alts}, nil
}

// and := unary ((AND)? unary)*, where unary := (NOT | -)? primary
func (p *parser) and(depth int) (_ *node, items int, _ error) {
	g := &node{kind: nAnd}
	for {
		t, ok := p.peek()
		if !ok || t.kind == tOr || t.kind == tClose {
			break
		}
		if t.kind == tAnd {
			if items == 0 {
				return nil, 0, &QueryError{"AND without a left-hand side"}
			}
			p.pos++
			if t, ok := p.peek(); !ok || t.kind == tOr || t.kind == tAnd || t.kind == tClose {
				return nil, 0, &QueryError{"AND without a right-hand side"}
			}
			continue
		}
		neg := false
		if t.kind == tNot || t.kind == tMinus {
			neg = true
			p.pos++
			if t, ok := p.peek(); !ok || t.kind == tOr || t.kind == tAnd || t.kind == tClose || t.kind == tNot || t.kind == tMinus {
				return nil, 0, &QueryError{"NOT without an operand"}
			}
		}
		n, err := p.primary(depth)
		if err != nil {
			return nil, 0, err
		}
		items++
		if n == nil {
			continue
		}
		if neg {
			g.not = append(g.not, n)
		} else {
			g.kids = append(g.kids, n)
		}
	}
	if len(g.kids) == 0 && len(g.not) == 0 {
		return nil, items, nil
	}
	if len(g.not) == 0 && len(g.kids) == 1 {
		return g.kids[0], items, nil
	}
	return g, items, nil
}

func (p *parser) primary(depth int) (*node, error) {
	t, _ := p.peek()
	p.pos++
	switch t.kind {
	case tBadQuote:
		return nil, &QueryError{"unbalanced quotes"}
	case tOpen:
		if depth+1 > MaxQueryDepth {
			return nil, &QueryError{"parentheses nested too deep"}
		}
		n, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if t, ok := p.peek(); !ok || t.kind != tClose {
			return nil, &QueryError{"unbalanced parentheses"}
		}
		p.pos++
		return n, nil
	case tWord, tPhrase:
		terms := Terms(t.text)
		if len(terms) == 0 {
			return nil, nil
		}
		p.terms += len(terms)
		if p.terms > MaxQueryTerms {
			return nil, &QueryError{"too many terms"}
		}
		return &node{kind: nTerm, terms: terms, prefix: t.prefix}, nil
	}
	return nil, &QueryError{"unexpected operator"}
}

// check: every AND group with negated items has a positive one (FTS5
// has no unary NOT).
func (n *node) check() error {
	if n.kind == nAnd && len(n.kids) == 0 {
		return &QueryError{"a query needs a word that is not negated"}
	}
	for _, k := range n.kids {
		if err := k.check(); err != nil {
			return err
		}
	}
	for _, k := range n.not {
		if err := k.check(); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) write(b *strings.Builder) {
	switch n.kind {
	case nTerm:
		b.WriteByte('"')
		for i, t := range n.terms {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strings.ReplaceAll(t, `"`, `""`))
		}
		b.WriteByte('"')
		if n.prefix {
			b.WriteString(" *")
		}
	case nOr:
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(" OR ")
			}
			b.WriteByte('(')
			k.write(b)
			b.WriteByte(')')
		}
	case nAnd:
		var pos strings.Builder
		for i, k := range n.kids {
			if i > 0 {
				pos.WriteString(" AND ")
			}
			pos.WriteByte('(')
			k.write(&pos)
			pos.WriteByte(')')
		}
		expr := pos.String()
		for _, k := range n.not {
			var neg strings.Builder
			k.write(&neg)
			expr = "(" + expr + ") NOT (" + neg.String() + ")"
		}
		b.WriteString(expr)
	}
}

// QueryTerms returns the folded terms of a user query's words and
// phrases (operators left out), and separately the terms written as
// prefixes, for highlighting matches. It accepts any text.
func QueryTerms(text string) (terms, prefixes []string) {
	if len(text) > MaxQueryBytes {
		text = text[:MaxQueryBytes]
	}
	text = strings.ToValidUTF8(text, " ")
	for _, t := range lex(text) {
		if t.kind != tWord && t.kind != tPhrase {
			continue
		}
		ts := Terms(t.text)
		if t.prefix && len(ts) > 0 {
			prefixes = append(prefixes, ts[len(ts)-1])
			ts = ts[:len(ts)-1]
		}
		terms = append(terms, ts...)
	}
	return terms, prefixes
}
