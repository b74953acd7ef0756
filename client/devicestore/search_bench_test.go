package devicestore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchVocab is a deterministic vocabulary of pseudo-words; message text
// draws from it with a Zipf distribution, like natural language.
type benchVocab struct {
	words []string
	zipf  *rand.Zipf
	rng   *rand.Rand
}

func newBenchVocab(seed uint64, size int) *benchVocab {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	syl := []string{"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "da", "fe", "gu", "hi", "ja", "be", "co", "qu", "wa", "xe", "yo", "re", "ti", "mu", "an", "el", "or", "in", "st", "tr"}
	seen := map[string]bool{}
	var words []string
	for len(words) < size {
		n := 1 + rng.IntN(4)
		var b strings.Builder
		for range n {
			b.WriteString(syl[rng.IntN(len(syl))])
		}
		w := b.String()
		if !seen[w] && w != "and" && w != "or" && w != "not" {
			seen[w] = true
			words = append(words, w)
		}
	}
	return &benchVocab{words: words, zipf: rand.NewZipf(rng, 1.07, 2, uint64(size-1)), rng: rng}
}

// message returns a text of about n bytes.
func (v *benchVocab) message(n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(v.words[v.zipf.Uint64()])
	}
	return b.String()
}

const benchConversations = 50

// fillMessages stores n messages of about size bytes in batches, as the
// receive path does (InsertMessage inside Update).
func fillMessages(tb testing.TB, s *Store, v *benchVocab, n, batch, size int, start int) {
	tb.Helper()
	ctx := context.Background()
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var convs []int64
	if err := s.Update(ctx, func(tx *Tx) error {
		for i := range benchConversations {
			c, err := tx.Conversation(ctx, fmt.Sprintf("peer%02d", i))
			if err != nil {
				return err
			}
			convs = append(convs, c)
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	texts := make([][]byte, batch)
	for done := 0; done < n; done += batch {
		k := min(batch, n-done)
		for i := range k {
			texts[i] = []byte(v.message(size))
		}
		err := s.Update(ctx, func(tx *Tx) error {
			for i := range k {
				id := start + done + i
				c := id % benchConversations
				_, err := tx.InsertMessage(ctx, Message{ConversationID: convs[c], Sender: fmt.Sprintf("peer%02d", c), SenderDevice: 1,
					MessageID: fmt.Appendf(nil, "m%015d", id), Body: texts[i], SentAt: base.Add(time.Duration(id) * time.Minute)})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func newBenchStore(tb testing.TB, dir string) *Store {
	tb.Helper()
	s, err := Create(context.Background(), dir, Passphrase("bench"), WithKDFParams(KDFParams{Time: 1, Memory: 64, Threads: 1}))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func dropSearchTriggers(tb testing.TB, s *Store) {
	tb.Helper()
	for _, t := range []string{"messages_fts_insert", "messages_fts_update", "messages_fts_delete"} {
		if _, err := s.w.Exec(`DROP TRIGGER ` + t); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkIndexing stores ~100-byte messages in batches of 1000 per
// Update, with and without the search index; the messages/s metric is
// the figure to compare.
func BenchmarkIndexing(b *testing.B) {
	for _, indexed := range []bool{true, false} {
		b.Run(fmt.Sprintf("index=%v", indexed), func(b *testing.B) {
			s := newBenchStore(b, b.TempDir())
			defer s.Close()
			if !indexed {
				dropSearchTriggers(b, s)
			}
			for _, kv := range strings.Fields(os.Getenv("VEIL_FTS_OPTS")) {
				k, v, _ := strings.Cut(kv, "=")
				if _, err := s.w.Exec(`INSERT INTO messages_fts (messages_fts, rank) VALUES (?, ?)`, k, v); err != nil {
					b.Fatal(err)
				}
			}
			v := newBenchVocab(1, 30000)
			// A store that already holds messages, so the index is not
			// trivially small.
			fillMessages(b, s, v, 20000, 1000, 100, 0)
			const batch = 1000
			b.ResetTimer()
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				fillMessages(b, s, v, batch, batch, 100, 20000+i*batch)
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// TestSearchMillion builds a store of 1,000,000 messages and reports
// query latencies and sizes. It takes minutes: it runs only with
// VEIL_SEARCH_1M=1. VEIL_SEARCH_N overrides the count; VEIL_SEARCH_DIR
// keeps the store there and reuses it on the next run; VEIL_SEARCH_SIZE=1
// skips the queries and compares the sizes of compact copies with and
// without the index (it drops the index: the store is no longer
// reusable).
func TestSearchMillion(t *testing.T) {
	if os.Getenv("VEIL_SEARCH_1M") == "" {
		t.Skip("set VEIL_SEARCH_1M=1 to build a store of 1M messages and measure search")
	}
	n := 1_000_000
	if s := os.Getenv("VEIL_SEARCH_N"); s != "" {
		fmt.Sscan(s, &n)
	}
	ctx := context.Background()
	dir := os.Getenv("VEIL_SEARCH_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	v := newBenchVocab(1, 30000)
	var s *Store
	if _, err := os.Stat(filepath.Join(dir, HeaderFile)); err == nil {
		s, err = Open(ctx, dir, Passphrase("bench"))
		if err != nil {
			t.Fatal(err)
		}
		n, _ = s.CountMessages(ctx)
		t.Logf("reusing the store in %s: %d messages", dir, n)
	} else {
		s = newBenchStore(t, dir)
		start := time.Now()
		fillMessages(t, s, v, n, 10000, 100, 0)
		el := time.Since(start)
		t.Logf("stored %d messages in %v (%.0f msgs/s)", n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	}
	defer s.Close()
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	// Queries use words of stored messages (as users search for words
	// they saw), leaving out the 100 most common (stop words), which are
	// measured on their own as the worst case.
	common := map[string]bool{}
	for _, w := range v.words[:100] {
		common[w] = true
	}
	qrng := rand.New(rand.NewPCG(7, 7))
	var samples [][]string
	rows, err := s.r.Query(`SELECT body FROM messages WHERE id % 97 = 0`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b string
		rows.Scan(&b)
		var ws []string
		for _, w := range strings.Fields(b) {
			if !common[w] {
				ws = append(ws, w)
			}
		}
		if len(ws) >= 2 {
			samples = append(samples, ws)
		}
	}
	rows.Close()
	word := func() []string {
		ws := samples[qrng.IntN(len(samples))]
		qrng.Shuffle(len(ws), reflect.Swapper(ws))
		return ws
	}
	kinds := []struct {
		name  string
		count int
		text  func() string
		conv  bool
	}{
		{"one word", 2000, func() string { return word()[0] }, false},
		{"two words", 2000, func() string { ws := word(); return ws[0] + " " + ws[1] }, false},
		{"two words OR", 500, func() string { ws := word(); return ws[0] + " OR " + ws[1] }, false},
		{"phrase of two", 500, func() string { ws := word(); return `"` + ws[0] + " " + ws[1] + `"` }, false},
		{"prefix (4 letters)", 500, func() string { w := word()[0]; return w[:min(len(w), 4)] + "*" }, false},
		{"one word + conversation", 500, func() string { return word()[0] }, true},
		{"rare word (uniform)", 500, func() string { return v.words[100+qrng.IntN(len(v.words)-100)] }, false},
		{"stop word (top 100)", 50, func() string { return v.words[qrng.IntN(100)] }, false},
	}
	for _, k := range kinds {
		if os.Getenv("VEIL_SEARCH_SIZE") != "" {
			break
		}
		var lat []time.Duration
		hits := 0
		for range k.count {
			q := SearchQuery{Text: k.text(), Limit: 20}
			if k.conv {
				q.Conversation = int64(1 + qrng.IntN(benchConversations))
			}
			t0 := time.Now()
			h, err := s.Search(ctx, q)
			lat = append(lat, time.Since(t0))
			if err != nil {
				t.Fatal(err)
			}
			hits += len(h)
		}
		slices.Sort(lat)
		t.Logf("%-26s n=%-5d p50 %9v  p99 %9v  max %9v  (avg %.1f hits)", k.name, k.count, lat[len(lat)/2].Round(time.Microsecond),
			lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond), float64(hits)/float64(k.count))
	}

	if os.Getenv("VEIL_SEARCH_SIZE") == "" {
		return
	}
	// Compact copies (VACUUM INTO: the in-place VACUUM needs the whole
	// database in temporary memory), with and without the index; the
	// Adiantum VFS does not change sizes (4 KiB blocks for 4 KiB pages).
	size := func(name string) int64 {
		path := filepath.Join(t.TempDir(), name)
		if _, err := s.w.Exec(`VACUUM INTO ?`, "file:"+path+"?vfs=os"); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
		return fi.Size()
	}
	with := size("with.db")
	if _, err := s.w.Exec(`DROP TABLE messages_fts`); err != nil {
		t.Fatal(err)
	}
	without := size("without.db")
	t.Logf("database size: %d B with the index (%.1f B/message), %d B without (%.1f B/message): index %.1f B/message",
		with, float64(with)/float64(n), without, float64(without)/float64(n), float64(with-without)/float64(n))
}
