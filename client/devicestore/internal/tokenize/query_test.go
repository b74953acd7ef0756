package tokenize

import (
	"errors"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"fox", `"fox"`},
		{"Fox garden", `("fox") AND ("garden")`},
		{`"Brown FOX"`, `"brown fox"`},
		{"quar*", `"quar" *`},
		{`"quick bro"*`, `"quick bro" *`},
		{"a OR b", `("a") OR ("b")`},
		{"a b OR c", `(("a") AND ("b")) OR ("c")`},
		{"a AND b", `("a") AND ("b")`},
		{"a -b", `(("a")) NOT ("b")`},
		{"a NOT b -c", `((("a")) NOT ("b")) NOT ("c")`},
		{"-b a", `(("a")) NOT ("b")`},
		{"(a OR b) -c", `((("a") OR ("b"))) NOT ("c")`},
		{"東京", `"東 京"`},
		{"e-mail", `"e mail"`},
		{"and or not", `("and") AND ("or") AND ("not")`},
		{"fox !!!", `"fox"`},
		{"NEAR(a b)", `("near") AND (("a") AND ("b"))`},
		{"body:fox", `"body fox"`},
		{"Crème*", `"creme" *`},
	} {
		got, err := ParseQuery(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseQuery(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "!!!", "(", ")", "a)", "(a", "a AND", "AND a", "OR a", "a OR", "a OR OR b", "-a", "NOT a",
		"a NOT", "a OR -b", `"a`, "- -a", strings.Repeat("(", 17) + "a" + strings.Repeat(")", 17), strings.Repeat("x", MaxQueryBytes+1),
		strings.Repeat("w ", MaxQueryTerms+1), "()"} {
		got, err := ParseQuery(in)
		var qe *QueryError
		if !errors.As(err, &qe) {
			t.Errorf("ParseQuery(%.40q) = %q, %v; want a QueryError", in, got, err)
		}
	}
}

// checkExpr checks that an expression is made of quoted strings, the
// prefix star, parentheses and the operators AND, OR, NOT only, with
// balanced parentheses.
func checkExpr(t *testing.T, in, expr string) {
	depth := 0
	for i := 0; i < len(expr); {
		switch c := expr[i]; {
		case c == ' ' || c == '*':
			i++
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			if depth < 0 {
				t.Fatalf("%q: unbalanced %q", in, expr)
			}
			i++
		case c == '"':
			j := i + 1
			for j < len(expr) && expr[j] != '"' {
				j++
			}
			if j == len(expr) || j == i+1 {
				t.Fatalf("%q: bad string in %q", in, expr)
			}
			i = j + 1
		case strings.HasPrefix(expr[i:], "AND "), strings.HasPrefix(expr[i:], "NOT "):
			i += 4
		case strings.HasPrefix(expr[i:], "OR "):
			i += 3
		default:
			t.Fatalf("%q: unexpected %q at %d in %q", in, c, i, expr)
		}
	}
	if depth != 0 {
		t.Fatalf("%q: unbalanced %q", in, expr)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"fox", `"brown fox"*`, "a OR b -c", "(a OR (b AND c)) NOT d", "東京", `"`, ")("} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		expr, err := ParseQuery(in)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("%q: %v is not a QueryError", in, err)
			}
			// The reasons are fixed phrases: no query bytes in them.
			if strings.Trim(err.Error(), "abcdefghijklmnopqrstuvwxyzANDORNT -") != "" {
				t.Fatalf("error %q is not a fixed reason", err)
			}
			return
		}
		checkExpr(t, in, expr)
		// Deterministic.
		if again, _ := ParseQuery(in); again != expr {
			t.Fatalf("%q: %q then %q", in, expr, again)
		}
	})
}
