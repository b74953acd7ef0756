package devicestore_test

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/converge"
)

type corpusMessage struct {
	Key, Conv, Sender, Body string
	Day                     int
}

var corpusEpoch = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func day(n int) time.Time { return corpusEpoch.AddDate(0, 0, n) }

// loadCorpus stores testdata/search_corpus.json (one conversation per
// "conv", messages sent on corpusEpoch + day) and returns the local ids
// by key and the conversation ids by peer.
func loadCorpus(t *testing.T, s *devicestore.Store) (ids map[string]int64, convs map[string]int64) {
	t.Helper()
	b, err := os.ReadFile("testdata/search_corpus.json")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []corpusMessage
	if err := json.Unmarshal(b, &msgs); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ids, convs = map[string]int64{}, map[string]int64{}
	update(t, s, func(tx *devicestore.Tx) error {
		for _, m := range msgs {
			c, err := tx.Conversation(ctx, m.Conv)
			if err != nil {
				return err
			}
			convs[m.Conv] = c
			id, err := tx.InsertMessage(ctx, devicestore.Message{ConversationID: c, Sender: m.Sender, SenderDevice: 1,
				Outgoing: m.Sender == "me", MessageID: []byte(m.Key), Body: []byte(m.Body), SentAt: day(m.Day)})
			if err != nil {
				return err
			}
			ids[m.Key] = id
		}
		return nil
	})
	return ids, convs
}

func keysOf(ids map[string]int64, hits []devicestore.SearchHit) []string {
	byID := map[int64]string{}
	for k, id := range ids {
		byID[id] = k
	}
	var out []string
	for _, h := range hits {
		out = append(out, byID[h.Message.ID])
	}
	sort.Strings(out)
	return out
}

func search(t *testing.T, s *devicestore.Store, q devicestore.SearchQuery) []devicestore.SearchHit {
	t.Helper()
	hits, err := s.Search(t.Context(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	for i := 1; i < len(hits); i++ {
		if hits[i].Rank > hits[i-1].Rank {
			t.Errorf("Search(%q): hit %d ranks %v above hit %d's %v", q.Text, i, hits[i].Rank, i-1, hits[i-1].Rank)
		}
	}
	return hits
}

func TestSearchCorpus(t *testing.T) {
	s, _ := newStore(t)
	ids, convs := loadCorpus(t, s)
	for _, c := range []struct {
		q    devicestore.SearchQuery
		want string // keys, space-separated, sorted
	}{
		// English: words, case, phrases, prefixes, booleans.
		{devicestore.SearchQuery{Text: "fox"}, "en1 en3"},
		{devicestore.SearchQuery{Text: "FOX"}, "en1 en3"},
		{devicestore.SearchQuery{Text: `"brown fox"`}, "en1"},
		{devicestore.SearchQuery{Text: `"fox brown"`}, ""},
		{devicestore.SearchQuery{Text: "quarter*"}, "en2 en4"},
		{devicestore.SearchQuery{Text: "after*"}, "en2 en3"},
		{devicestore.SearchQuery{Text: `"quick bro"*`}, "en1"},
		{devicestore.SearchQuery{Text: "fox AND garden"}, "en3"},
		{devicestore.SearchQuery{Text: "fox garden"}, "en3"},
		{devicestore.SearchQuery{Text: "fox OR quarterly"}, "en1 en2 en3 en4"},
		{devicestore.SearchQuery{Text: "fox NOT garden"}, "en1"},
		{devicestore.SearchQuery{Text: "fox -garden"}, "en1"},
		{devicestore.SearchQuery{Text: "(fox OR numbers) -lazy"}, "en3 en4"},
		{devicestore.SearchQuery{Text: "fox OR numbers AND great"}, "en1 en3 en4"},
		{devicestore.SearchQuery{Text: "(fox OR numbers) AND great"}, "en4"},
		{devicestore.SearchQuery{Text: "and"}, ""}, // lowercase: a plain word, in no message
		{devicestore.SearchQuery{Text: "fox !!!"}, "en1 en3"},
		// Accents and case folding.
		{devicestore.SearchQuery{Text: "cafe"}, "fr1"},
		{devicestore.SearchQuery{Text: "CAFÉ noel"}, "fr1"},
		{devicestore.SearchQuery{Text: "creme brulee"}, "fr2"},
		{devicestore.SearchQuery{Text: `"crème brûlée"`}, "fr2"},
		{devicestore.SearchQuery{Text: "mang*"}, "fr2"},
		{devicestore.SearchQuery{Text: "strasse"}, "de1"},
		{devicestore.SearchQuery{Text: "STRASSE grüsse"}, "de1"},
		{devicestore.SearchQuery{Text: "munchen"}, "de1"},
		{devicestore.SearchQuery{Text: "donde estacion manana"}, "es1"},
		{devicestore.SearchQuery{Text: "москве"}, "ru1"},
		{devicestore.SearchQuery{Text: "ПРИВЕТ"}, "ru1"},
		{devicestore.SearchQuery{Text: "елка"}, "ru2"},
		{devicestore.SearchQuery{Text: "ёлка"}, "ru2"},
		{devicestore.SearchQuery{Text: "αθηνα"}, "el1"},
		{devicestore.SearchQuery{Text: "ΚΑΛΗΜΈΡΑ"}, "el1"},
		{devicestore.SearchQuery{Text: "مرحبا"}, "ar1 ar2"},
		{devicestore.SearchQuery{Text: "القاهرة"}, "ar1"},
		{devicestore.SearchQuery{Text: "שלום"}, "he1"},
		{devicestore.SearchQuery{Text: "בירושלים"}, "he1"},
		// Scripts without spaces: a word inside a run, in order only.
		{devicestore.SearchQuery{Text: "北京"}, "zh1 zh2"},
		{devicestore.SearchQuery{Text: "东京"}, "zh2"},
		{devicestore.SearchQuery{Text: "京东"}, "zh3"},
		{devicestore.SearchQuery{Text: "東京"}, "ja1"},
		{devicestore.SearchQuery{Text: "京東"}, ""},
		{devicestore.SearchQuery{Text: "北京 OR 東京"}, "ja1 zh1 zh2"},
		{devicestore.SearchQuery{Text: "北京 -东京"}, "zh1"},
		{devicestore.SearchQuery{Text: "コーヒー"}, "ja2"},
		{devicestore.SearchQuery{Text: "飲み"}, "ja2"},
		{devicestore.SearchQuery{Text: "서울"}, "ko1"},
		{devicestore.SearchQuery{Text: "공부"}, "ko2"},
		{devicestore.SearchQuery{Text: "สวัสดี"}, "th1"},
		{devicestore.SearchQuery{Text: "กรุงเทพ"}, "th2"},
		{devicestore.SearchQuery{Text: "สมชาย"}, "th1"},
		// Emoji.
		{devicestore.SearchQuery{Text: "🎉"}, "em1"},
		{devicestore.SearchQuery{Text: "party"}, "em1"},
		{devicestore.SearchQuery{Text: "👍"}, "em2"},
		{devicestore.SearchQuery{Text: "good"}, "em2"},
		// Filters.
		{devicestore.SearchQuery{Text: "quarterly", Conversation: convs["bob"]}, "en4"},
		{devicestore.SearchQuery{Text: "quarterly", Conversation: convs["carol"]}, ""},
		{devicestore.SearchQuery{Text: "fox OR quarterly", Sender: "me"}, "en2 en4"},
		{devicestore.SearchQuery{Text: "fox OR quarterly", Sender: "bob"}, "en3"},
		{devicestore.SearchQuery{Text: "fox", Since: day(2)}, "en3"},
		{devicestore.SearchQuery{Text: "fox", Until: day(3)}, "en1"},
		{devicestore.SearchQuery{Text: "fox OR quarterly", Since: day(2), Until: day(10)}, "en2 en3"},
		{devicestore.SearchQuery{Text: "fox OR quarterly", Since: day(2), Until: day(10), Sender: "me", Conversation: convs["alice"]}, "en2"},
	} {
		hits := search(t, s, c.q)
		if got := strings.Join(keysOf(ids, hits), " "); got != c.want {
			t.Errorf("Search(%q conv=%d sender=%q since=%v until=%v) = %q, want %q", c.q.Text, c.q.Conversation, c.q.Sender,
				!c.q.Since.IsZero(), !c.q.Until.IsZero(), got, c.want)
		}
		for _, h := range hits {
			if !strings.Contains(h.Snippet, devicestore.HighlightStart) || !strings.Contains(h.Snippet, devicestore.HighlightEnd) {
				t.Errorf("Search(%q): snippet %q has no highlight", c.q.Text, h.Snippet)
			}
		}
	}
}

func TestSearchSnippetAndMessage(t *testing.T) {
	s, _ := newStore(t)
	ids, convs := loadCorpus(t, s)
	hits := search(t, s, devicestore.SearchQuery{Text: "crème"})
	if len(hits) != 1 {
		t.Fatalf("hits = %d", len(hits))
	}
	h := hits[0]
	if want := "Où est la \x02crème\x03 brûlée ? Je l'ai mangée."; h.Snippet != want {
		t.Errorf("snippet = %q, want %q", h.Snippet, want)
	}
	m := h.Message
	if m.ID != ids["fr2"] || m.ConversationID != convs["carol"] || m.Sender != "me" || !m.Outgoing ||
		string(m.MessageID) != "fr2" || !m.SentAt.Equal(day(5)) || !strings.HasPrefix(string(m.Body), "Où est") {
		t.Errorf("message = %+v", m)
	}
	if h.Rank <= 0 {
		t.Errorf("rank = %v, want > 0", h.Rank)
	}
	hits = search(t, s, devicestore.SearchQuery{Text: "東京"})
	if len(hits) != 1 || hits[0].Snippet != "\x02東京\x03都に住んでいます。" {
		t.Errorf("CJK snippet: %d hits %+v", len(hits), hits)
	}
}

func TestSearchRankingAndPaging(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	update(t, s, func(tx *devicestore.Tx) error {
		c, err := tx.Conversation(ctx, "p")
		if err != nil {
			return err
		}
		for i, b := range []string{
			"one kiwi among many other words in this rather long message about nothing much",
			"kiwi kiwi kiwi",
			"a kiwi and a mango",
			"mango only",
			"kiwi",
		} {
			if _, err := tx.InsertMessage(ctx, devicestore.Message{ConversationID: c, Sender: "p", MessageID: []byte{byte(i)}, Body: []byte(b)}); err != nil {
				return err
			}
		}
		return nil
	})
	all := search(t, s, devicestore.SearchQuery{Text: "kiwi"})
	if len(all) != 4 {
		t.Fatalf("hits = %d, want 4", len(all))
	}
	if b := string(all[0].Message.Body); b != "kiwi kiwi kiwi" {
		t.Errorf("best hit %q, want the one that says kiwi thrice", b)
	}
	if b := string(all[3].Message.Body); !strings.HasPrefix(b, "one kiwi") {
		t.Errorf("worst hit %q, want the long message", b)
	}
	var paged []int64
	for off := 0; off < 6; off += 2 {
		for _, h := range search(t, s, devicestore.SearchQuery{Text: "kiwi", Limit: 2, Offset: off}) {
			paged = append(paged, h.Message.ID)
		}
	}
	var want []int64
	for _, h := range all {
		want = append(want, h.Message.ID)
	}
	if !slices.Equal(paged, want) {
		t.Errorf("pages = %v, want %v", paged, want)
	}
}

func TestSearchInvalidQuery(t *testing.T) {
	s, _ := newStore(t)
	loadCorpus(t, s)
	for _, q := range []string{"", "   ", "!!!", "(", "fox)", "(fox", "fox AND", "AND fox", "OR fox", "fox OR", "-fox", "NOT fox",
		"fox NOT", `"fox`, "fox OR -garden", "((((((((((((((((((fox))))))))))))))))))", strings.Repeat("x", 2000),
		strings.Repeat("a ", 100), "\xff\xfe"} {
		hits, err := s.Search(t.Context(), devicestore.SearchQuery{Text: q})
		if !errors.Is(err, devicestore.ErrInvalidQuery) {
			t.Errorf("Search(%.40q) = %d hits, %v; want ErrInvalidQuery", q, len(hits), err)
		}
	}
	// FTS5 syntax in user text is plain words.
	for _, q := range []string{"body:fox", "fox^", "{body}: fox", "fox + garden", "NEAR fox", `fox "" garden`, "fox:*", "'fox'", "NEAR(fox garden)"} {
		if _, err := s.Search(t.Context(), devicestore.SearchQuery{Text: q}); err != nil {
			t.Errorf("Search(%q): %v", q, err)
		}
	}
	if _, err := s.Search(t.Context(), devicestore.SearchQuery{Text: "fox", Limit: -1}); !errors.Is(err, devicestore.ErrInvalidQuery) {
		t.Errorf("negative limit: %v", err)
	}
}

// TestSearchEditsAndDeletes: an edit re-indexes the new body, a delete
// for everyone (empty body) un-indexes, in the same Update; so does an
// edit and a delete of a message stored in the same transaction.
func TestSearchEditsAndDeletes(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	var a, b int64
	update(t, s, func(tx *devicestore.Tx) error {
		c, err := tx.Conversation(ctx, "p")
		if err != nil {
			return err
		}
		if a, err = tx.InsertMessage(ctx, devicestore.Message{ConversationID: c, Sender: "p", MessageID: []byte("a"), Body: []byte("original apricot")}); err != nil {
			return err
		}
		if b, err = tx.InsertMessage(ctx, devicestore.Message{ConversationID: c, Sender: "p", MessageID: []byte("b"), Body: []byte("first blueberry")}); err != nil {
			return err
		}
		// b is edited before the transaction commits (still queued for indexing).
		return tx.SaveMessageState(ctx, b, []byte("b"), converge.State{Sender: "p", Body: "second blackberry", Edited: true})
	})
	count := func(q string) int { return len(search(t, s, devicestore.SearchQuery{Text: q})) }
	if count("apricot") != 1 || count("blackberry") != 1 || count("blueberry") != 0 {
		t.Fatalf("after insert: apricot %d blackberry %d blueberry %d", count("apricot"), count("blackberry"), count("blueberry"))
	}
	update(t, s, func(tx *devicestore.Tx) error {
		return tx.SaveMessageState(ctx, a, []byte("a"), converge.State{Sender: "p", Body: "edited avocado", Edited: true})
	})
	if count("apricot") != 0 || count("avocado") != 1 || count("original") != 0 || count("edited") != 1 {
		t.Errorf("after edit: apricot %d avocado %d", count("apricot"), count("avocado"))
	}
	update(t, s, func(tx *devicestore.Tx) error {
		return tx.SaveMessageState(ctx, a, []byte("a"), converge.State{Sender: "p", Deleted: true})
	})
	if count("avocado") != 0 || count("edited") != 0 {
		t.Errorf("after delete: avocado %d", count("avocado"))
	}
	if count("blackberry") != 1 {
		t.Errorf("other message lost")
	}
	// Stored and deleted for everyone in one transaction: never indexed.
	update(t, s, func(tx *devicestore.Tx) error {
		id, err := tx.InsertMessage(ctx, devicestore.Message{ConversationID: 1, Sender: "p", MessageID: []byte("c"), Body: []byte("cherry")})
		if err != nil {
			return err
		}
		return tx.SaveMessageState(ctx, id, []byte("c"), converge.State{Sender: "p", Deleted: true})
	})
	if count("cherry") != 0 {
		t.Errorf("deleted in its own transaction: cherry found")
	}
}

func TestSearchRollback(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx *devicestore.Tx) error {
		c, err := tx.Conversation(ctx, "p")
		if err != nil {
			return err
		}
		if _, err := tx.InsertMessage(ctx, devicestore.Message{ConversationID: c, Sender: "p", MessageID: []byte("x"), Body: []byte("raspberry")}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if n := len(search(t, s, devicestore.SearchQuery{Text: "raspberry"})); n != 0 {
		t.Errorf("rolled-back message found %d times", n)
	}
	update(t, s, func(tx *devicestore.Tx) error {
		c, err := tx.Conversation(ctx, "p")
		if err != nil {
			return err
		}
		_, err = tx.InsertMessage(ctx, devicestore.Message{ConversationID: c, Sender: "p", MessageID: []byte("y"), Body: []byte("strawberry")})
		return err
	})
	if n := len(search(t, s, devicestore.SearchQuery{Text: "strawberry OR raspberry"})); n != 1 {
		t.Errorf("after a rollback and a commit: %d hits, want 1", n)
	}
}

// TestSearchReindex: Reindex rebuilds the same results (ids, snippets,
// ranks), reports progress, and survives a reopen.
func TestSearchReindex(t *testing.T) {
	s, dir := newStore(t)
	loadCorpus(t, s)
	queries := []string{"fox", "fox OR quarterly", "北京", "cafe", "after*", "🎉", "مرحبا"}
	before := map[string][]devicestore.SearchHit{}
	for _, q := range queries {
		before[q] = search(t, s, devicestore.SearchQuery{Text: q})
	}
	var calls int
	var done, total int64
	if err := s.Reindex(t.Context(), func(d, tt int64) { calls++; done, total = d, tt }); err != nil {
		t.Fatal(err)
	}
	if calls == 0 || done != total || total != 25 {
		t.Errorf("progress: %d calls, last %d/%d", calls, done, total)
	}
	s = reopen(t, s, dir)
	for _, q := range queries {
		after := search(t, s, devicestore.SearchQuery{Text: q})
		if len(after) != len(before[q]) || len(after) == 0 {
			t.Errorf("%q: %d hits after reindex, %d before", q, len(after), len(before[q]))
			continue
		}
		for i := range after {
			a, b := after[i], before[q][i]
			if a.Message.ID != b.Message.ID || a.Snippet != b.Snippet || a.Rank != b.Rank {
				t.Errorf("%q hit %d: %d %q %v after, %d %q %v before", q, i, a.Message.ID, a.Snippet, a.Rank, b.Message.ID, b.Snippet, b.Rank)
			}
		}
	}
}

// TestSearchRankWindow: with more matches than RankWindow, the newest
// RankWindow come first ranked by relevance, then the older ones newest
// first; paging walks the same order; a conversation filter applies
// before the window.
func TestSearchRankWindow(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	const n = devicestore.RankWindow + 120
	var convA, convB int64
	update(t, s, func(tx *devicestore.Tx) error {
		var err error
		if convA, err = tx.Conversation(ctx, "a"); err != nil {
			return err
		}
		if convB, err = tx.Conversation(ctx, "b"); err != nil {
			return err
		}
		for i := range n {
			body := "kiwi " + strings.Repeat("filler ", i%7) // varying length: varying rank
			c := convA
			if i%10 == 0 {
				c = convB
			}
			if _, err := tx.InsertMessage(ctx, devicestore.Message{ConversationID: c, Sender: "a", MessageID: []byte{byte(i), byte(i >> 8)},
				Body: []byte(body), SentAt: day(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	all, err := s.Search(ctx, devicestore.SearchQuery{Text: "kiwi", Limit: 1000})
	if err != nil || len(all) != n {
		t.Fatalf("%d hits, %v; want %d", len(all), err, n)
	}
	ranked, older := all[:devicestore.RankWindow], all[devicestore.RankWindow:]
	minRanked := int64(1 << 62)
	for i, h := range ranked {
		if i > 0 && h.Rank > ranked[i-1].Rank {
			t.Fatalf("ranked hit %d out of order", i)
		}
		minRanked = min(minRanked, h.Message.ID)
	}
	for i, h := range older {
		if h.Message.ID >= minRanked || (i > 0 && h.Message.ID >= older[i-1].Message.ID) {
			t.Fatalf("older hit %d (id %d) not newest-first below the window (from id %d)", i, h.Message.ID, minRanked)
		}
	}
	if got := int64(n) - minRanked + 1; got != devicestore.RankWindow {
		t.Errorf("window spans the newest %d messages, want %d", got, devicestore.RankWindow)
	}
	var paged []int64
	for off := 0; off < n+50; off += 70 {
		hits, err := s.Search(ctx, devicestore.SearchQuery{Text: "kiwi", Limit: 70, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hits {
			paged = append(paged, h.Message.ID)
		}
	}
	if len(paged) != n {
		t.Fatalf("paged %d hits, want %d", len(paged), n)
	}
	for i := range all {
		if paged[i] != all[i].Message.ID {
			t.Fatalf("page order differs at %d", i)
		}
	}
	inB, err := s.Search(ctx, devicestore.SearchQuery{Text: "kiwi", Conversation: convB, Limit: 1000})
	if err != nil || len(inB) != n/10 {
		t.Fatalf("conversation b: %d hits, %v; want %d", len(inB), err, n/10)
	}
	for _, h := range inB {
		if h.Message.ConversationID != convB {
			t.Fatalf("hit from conversation %d", h.Message.ConversationID)
		}
	}
}
