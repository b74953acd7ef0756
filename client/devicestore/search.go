package devicestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/ext/fts5"

	"github.com/veil-e2ee/veil/client/devicestore/internal/tokenize"
)

// Full-text search
//
// Messages are indexed by an FTS5 table inside the encrypted database
// (migration 0006), kept in step by triggers in the transaction that
// stores, edits or deletes a message. Terms come from the tokenizer in
// internal/tokenize, which documents the scripts it handles: words of
// spaced scripts are case-folded and stripped of diacritics; Chinese,
// Japanese, Korean, Thai, Lao, Khmer and Myanmar text is indexed by
// character, and a word of those scripts is searched as the phrase of
// its characters.

// Highlight markers around matched terms in SearchHit.Snippet: the
// control characters STX and ETX, which message text never needs, so a
// UI can split on them without escaping.
const (
	HighlightStart = "\x02"
	HighlightEnd   = "\x03"
	// SnippetEllipsis marks text left out at either end of a snippet.
	SnippetEllipsis = "…"
)

// ErrInvalidQuery: a search query's syntax is wrong (unbalanced
// parentheses or quotes, an operator without an operand, only negated
// terms) or it has no searchable word. The message says what, quoting
// no query text.
var ErrInvalidQuery = errors.New("devicestore: invalid search query")

// Query limits: longer or deeper queries are ErrInvalidQuery.
const (
	MaxQueryBytes  = tokenize.MaxQueryBytes
	MaxQueryTerms  = tokenize.MaxQueryTerms
	maxSearchLimit = 1000
	// DefaultSearchLimit is the page size when SearchQuery.Limit is 0.
	DefaultSearchLimit = 20
)

// SearchQuery is a full-text search over messages.
//
// Text syntax (operators in capitals, as typed):
//
//	word          a word; several words must all occur (AND)
//	"a phrase"    the words in this order, next to each other
//	pre*          words starting with pre (also "a phra"*)
//	a AND b       both (the same as a b)
//	a OR b        either; AND binds tighter than OR
//	a NOT b, -b   a without b (a query must have a word not negated)
//	( … )         grouping
//
// Words are matched case- and accent-insensitively. A word in a script
// without spaces (東京, 서울, กรุงเทพ) matches wherever its characters
// occur in that order, also inside a longer run (東京 in 東京都).
// Lowercase and, or, not are plain words.
//
// Results: the newest RankWindow matches (after the filters) come first,
// ordered by relevance (BM25: rarer words, more occurrences, shorter
// messages rank higher; ties newest first); older matches follow, newest
// first. Most searches have fewer matches than that and are ranked
// entirely; a common word is ranked among its recent uses, which bounds
// the cost of a search on a large store. Offset and Limit page through
// that one order.
type SearchQuery struct {
	Text         string
	Conversation int64  // 0: all conversations
	Sender       string // account id; "": anyone
	// Since (inclusive) and Until (exclusive) bound the messages' SentAt;
	// the zero time leaves that side open.
	Since, Until  time.Time
	Limit, Offset int // Limit 0 is DefaultSearchLimit; at most 1000
}

// SearchHit is one message found.
type SearchHit struct {
	Message Message
	// Snippet is a short extract of the body around the matches, matched
	// terms between HighlightStart and HighlightEnd, cut ends marked
	// with SnippetEllipsis.
	Snippet string
	// Rank is the relevance, a BM25 score (k1 = 1.2, b = 0.75) whose
	// document frequencies and mean length are taken over the ranked
	// window: higher is better, and only comparable within one search.
	Rank float64
}

// Search finds messages matching q, best first. Deleted messages (their
// body is emptied) never match.
func (r reader) Search(ctx context.Context, q SearchQuery) ([]SearchHit, error) {
	expr, err := parseSearchQuery(q.Text)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	switch {
	case limit < 0 || q.Offset < 0:
		return nil, fmt.Errorf("%w: negative limit or offset", ErrInvalidQuery)
	case limit == 0:
		limit = DefaultSearchLimit
	case limit > maxSearchLimit:
		limit = maxSearchLimit
	}
	since, until := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.Since.IsZero() {
		since = ms(q.Since)
	}
	if !q.Until.IsZero() {
		until = ms(q.Until)
	}
	// User terms match the body only; a conversation is a term of the
	// conv column, intersected inside the index.
	expr = "body : (" + expr + ")"
	if q.Conversation != 0 {
		expr += fmt.Sprintf(` AND conv : "c%d"`, q.Conversation)
	}
	args := []any{expr, q.Conversation, q.Sender, since, until}

	// The window: the newest RankWindow matches, with what ranking needs
	// (term frequencies, length), in one pass down the index.
	joined := q.Sender != "" || !q.Since.IsZero() || !q.Until.IsZero() // filters on the message row
	window, err := r.searchMatches(ctx, joined, ``, append(args, int64(math.MinInt64), RankWindow, 0))
	if err != nil {
		return nil, err
	}
	st := newRankStats(window)
	for i := range window {
		window[i].score = st.score(window[i])
	}
	sort.SliceStable(window, func(i, j int) bool { return window[i].score > window[j].score })
	var page []searchMatch
	if q.Offset < len(window) {
		page = window[q.Offset:min(len(window), q.Offset+limit)]
	}
	if len(window) == RankWindow && q.Offset+limit > RankWindow {
		lo := window[0].id
		for _, m := range window {
			lo = min(lo, m.id)
		}
		older, err := r.searchMatches(ctx, joined, `AND messages_fts.rowid < ?6`, append(args, lo, limit-len(page), max(q.Offset-RankWindow, 0)))
		if err != nil {
			return nil, err
		}
		for i := range older {
			older[i].score = st.score(older[i])
		}
		page = append(page, older...)
	}
	return r.searchHits(ctx, q.Text, page)
}

// RankWindow is how many of the newest matches Search ranks by
// relevance; see SearchQuery.
const RankWindow = 500

// searchFilters are SearchQuery's filters on messages m, parameters 2-5.
const searchFilters = `(?2 = 0 OR m.conversation_id = ?2) AND (?3 = '' OR m.sender = ?3) AND m.sent_at >= ?4 AND m.sent_at < ?5`

// searchMatch is a matching message with its ranking inputs.
type searchMatch struct {
	id     int64
	tf     []byte // occurrences of each query phrase in the body (capped at 255)
	length int64  // body terms
	score  float64
}

// searchMatches lists matches newest first: args are the MATCH
// expression, the filters, then ?6 for bound (extra WHERE text), ?7
// limit and ?8 offset.
func (r reader) searchMatches(ctx context.Context, joined bool, bound string, args []any) ([]searchMatch, error) {
	// Without filters on the message row, the index alone answers: no
	// look-up of each match's row (a random page read when the matches
	// are spread over a large store).
	query := `SELECT rowid, veil_tf(messages_fts), veil_len(messages_fts) FROM messages_fts
		WHERE messages_fts MATCH ?1 AND ?2 = ?2 AND ?3 = ?3 AND ?4 = ?4 AND ?5 = ?5 ` + bound + `
		ORDER BY rowid DESC LIMIT ?7 OFFSET ?8`
	if joined {
		query = `SELECT messages_fts.rowid, veil_tf(messages_fts), veil_len(messages_fts)
		FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
		WHERE messages_fts MATCH ?1 AND ` + searchFilters + ` ` + bound + `
		ORDER BY messages_fts.rowid DESC LIMIT ?7 OFFSET ?8`
	}
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr("searching", err)
	}
	defer rows.Close()
	var out []searchMatch
	for rows.Next() {
		var m searchMatch
		if err := rows.Scan(&m.id, &m.tf, &m.length); err != nil {
			return nil, dbErr("searching", err)
		}
		out = append(out, m)
	}
	return out, dbErr("searching", rows.Err())
}

// rankStats are the BM25 statistics, taken over the window: document
// frequency per phrase and the mean length. (FTS5's own bm25() takes
// them over the whole index, which costs a pass over every match of
// every phrase, and reads each ranked row's token count from another
// table; on a large store that pass alone exceeded the latency budget.)
type rankStats struct {
	idf   []float64
	avgdl float64
}

const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

func newRankStats(window []searchMatch) rankStats {
	var st rankStats
	var total int64
	var df []int
	for _, m := range window {
		total += m.length
		for len(df) < len(m.tf) {
			df = append(df, 0)
		}
		for p, n := range m.tf {
			if n > 0 {
				df[p]++
			}
		}
	}
	n := float64(len(window))
	for _, d := range df {
		st.idf = append(st.idf, math.Log(1+(n-float64(d)+0.5)/(float64(d)+0.5)))
	}
	st.avgdl = max(float64(total)/max(n, 1), 1)
	return st
}

func (st rankStats) score(m searchMatch) float64 {
	var s float64
	norm := bm25K1 * (1 - bm25B + bm25B*float64(m.length)/st.avgdl)
	for p, n := range m.tf {
		if n == 0 || p >= len(st.idf) {
			continue
		}
		tf := float64(n)
		s += st.idf[p] * tf * (bm25K1 + 1) / (tf + norm)
	}
	return s
}

// searchHits loads the messages of a page of matches and their
// snippets.
func (r reader) searchHits(ctx context.Context, text string, page []searchMatch) ([]SearchHit, error) {
	if len(page) == 0 {
		return nil, nil
	}
	ids := make([]any, len(page))
	for i, m := range page {
		ids[i] = m.id
	}
	msgs, err := queryAll(ctx, r.q, "searching", scanMessage,
		`SELECT `+messageCols+` FROM messages WHERE id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, ids...)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]Message, len(msgs))
	for _, m := range msgs {
		byID[m.ID] = m
	}
	terms, prefixes := tokenize.QueryTerms(text)
	hits := make([]SearchHit, 0, len(page))
	for _, p := range page {
		m, ok := byID[p.id]
		if !ok { // deleted between the two reads
			continue
		}
		hits = append(hits, SearchHit{Message: m, Snippet: snippet(string(m.Body), terms, prefixes), Rank: p.score})
	}
	return hits, nil
}

// stripMarkers removes highlight markers a body may hold itself, so a
// snippet's markers are only the search's.
var stripMarkers = strings.NewReplacer(HighlightStart, "", HighlightEnd, "")

// snippetTerms is how many terms a snippet shows.
const snippetTerms = 16

// snippet extracts up to snippetTerms terms of body around the first
// match, matched terms (a query term, or starting with a query prefix)
// between HighlightStart and HighlightEnd, adjacent matches merged, cut
// ends marked with SnippetEllipsis. Markers in the body are dropped.
func snippet(body string, terms, prefixes []string) string {
	type tok struct {
		start, end int
		hit        bool
	}
	var toks []tok
	first := -1
	tokenize.Tokenize(body, func(term string, start, end int) error {
		hit := slices.Contains(terms, term)
		for _, p := range prefixes {
			hit = hit || strings.HasPrefix(term, p)
		}
		if hit && first < 0 {
			first = len(toks)
		}
		toks = append(toks, tok{start, end, hit})
		return nil
	})
	if len(toks) == 0 {
		return ""
	}
	from := max(first-3, 0)
	to := min(from+snippetTerms, len(toks))
	from = max(min(from, to-snippetTerms), 0)
	var b strings.Builder
	if from > 0 {
		b.WriteString(SnippetEllipsis)
	}
	pos := toks[from].start
	in := false
	for _, t := range toks[from:to] {
		if t.start < pos { // another term folded from the same characters
			continue
		}
		if in && (!t.hit || t.start != pos) {
			b.WriteString(HighlightEnd)
			in = false
		}
		b.WriteString(stripMarkers.Replace(body[pos:t.start]))
		if t.hit && !in {
			b.WriteString(HighlightStart)
			in = true
		}
		b.WriteString(stripMarkers.Replace(body[t.start:t.end]))
		pos = t.end
	}
	if in {
		b.WriteString(HighlightEnd)
	}
	if to < len(toks) {
		b.WriteString(SnippetEllipsis)
	} else {
		b.WriteString(stripMarkers.Replace(body[pos:]))
	}
	return b.String()
}

// lenFunction is the FTS5 auxiliary function veil_len(messages_fts): the
// number of terms in the body.
func lenFunction(fts fts5.Context, ctx sqlite3.Context, _ ...sqlite3.Value) {
	n, err := fts.ColumnSize(0)
	if err != nil {
		ctx.ResultError(err)
		return
	}
	ctx.ResultInt64(int64(n))
}

// tfFunction is the FTS5 auxiliary function veil_tf(messages_fts): the
// number of occurrences in the body column of each phrase of the query,
// one byte each (capped at 255).
func tfFunction(fts fts5.Context, ctx sqlite3.Context, _ ...sqlite3.Value) {
	tf := make([]byte, fts.PhraseCount())
	n, err := fts.InstCount()
	if err != nil {
		ctx.ResultError(err)
		return
	}
	for i := range n {
		p, col, _, err := fts.Inst(i)
		if err != nil {
			ctx.ResultError(err)
			return
		}
		if col == 0 && p < len(tf) && tf[p] < 255 {
			tf[p]++
		}
	}
	ctx.ResultBlob(tf)
}

// parseSearchQuery turns the user's query text into a MATCH expression
// (see tokenize.ParseQuery); its errors are ErrInvalidQuery.
func parseSearchQuery(text string) (string, error) {
	expr, err := tokenize.ParseQuery(text)
	if qe := (*tokenize.QueryError)(nil); errors.As(err, &qe) {
		return "", fmt.Errorf("%w: %s", ErrInvalidQuery, qe.Reason)
	} else if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	return expr, nil
}

var prefixedMessageCols = "m." + strings.ReplaceAll(messageCols, ", ", ", m.")

// Reindex rebuilds the search index from the messages, in one
// transaction (a crash leaves the old index). progress, if not nil, is
// called after each batch with the messages indexed so far and the
// total. Searching works throughout (on the old index until the commit).
func (s *Store) Reindex(ctx context.Context, progress func(done, total int64)) error {
	return s.Update(ctx, func(tx *Tx) error {
		var total int64
		if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM messages`).Scan(&total); err != nil {
			return dbErr("reindexing", err)
		}
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')`); err != nil {
			return dbErr("reindexing", err)
		}
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM search_pending`); err != nil {
			return dbErr("reindexing", err)
		}
		const batch = 20000
		var done, last int64
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("devicestore: reindexing: %w", err)
			}
			var n, maxID int64
			err := tx.tx.QueryRowContext(ctx, `SELECT count(*), coalesce(max(id), 0) FROM (SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?)`, last, batch).Scan(&n, &maxID)
			if err != nil {
				return dbErr("reindexing", err)
			}
			if n == 0 {
				break
			}
			if _, err := tx.tx.ExecContext(ctx, `INSERT INTO messages_fts (rowid, body, conv) SELECT id, body, 'c' || conversation_id FROM messages WHERE id > ? AND id <= ?`, last, maxID); err != nil {
				return dbErr("reindexing", err)
			}
			done += n
			last = maxID
			if progress != nil {
				progress(done, max(total, done))
			}
		}
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO messages_fts (messages_fts) VALUES ('optimize')`); err != nil {
			return dbErr("reindexing", err)
		}
		return nil
	})
}

// indexPending indexes the messages queued by migration 0006's insert
// trigger; Update calls it just before committing, so new messages are
// searchable in the transaction's commit. It runs on the sql.Tx, not
// through the statement cache, which holds the caller's statements.
func indexPending(ctx context.Context, q querier) error {
	res, err := q.ExecContext(ctx, `INSERT INTO messages_fts (rowid, body, conv) SELECT m.id, m.body, 'c' || m.conversation_id FROM search_pending p JOIN messages m ON m.id = p.id`)
	if err != nil {
		return dbErr("indexing messages", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return nil
	}
	_, err = q.ExecContext(ctx, `DELETE FROM search_pending`)
	return dbErr("indexing messages", err)
}

// searchCacheKiB is each connection's page cache. Ranking reads every
// ranked match's length from the index's docsize table, a random read
// per match: with SQLite's default 2 MiB cache most of them miss, and a
// miss is a read and an Adiantum decryption of a 4 KiB page. The cache
// fills only as pages are used.
var searchCacheKiB = 16 << 10

// initSearchConn prepares a connection for search (the store's initConn
// calls it on every connection, readers included: a MATCH tokenizes its
// query with the same tokenizer): FTS5 with the search tokenizer, and a
// larger page cache.
func initSearchConn(c *sqlite3.Conn) error {
	if err := fts5.RegisterCustom(c, registerSearch); err != nil {
		return err
	}
	return c.Exec(fmt.Sprintf(`PRAGMA cache_size = -%d`, searchCacheKiB))
}

// registerSearch registers the search tokenizer.
func registerSearch(api *fts5.API) error {
	if err := api.CreateFunction("veil_tf", tfFunction); err != nil {
		return err
	}
	if err := api.CreateFunction("veil_len", lenFunction); err != nil {
		return err
	}
	return api.CreateTokenizer("veil", func([]string) (fts5.Tokenizer, error) { return ftsTokenizer{}, nil })
}

type ftsTokenizer struct{}

func (ftsTokenizer) Tokenize(_ fts5.TokenizeFlag, text, _ string, token fts5.TokenCallback) error {
	return tokenize.Tokenize(text, func(term string, start, end int) error {
		if len(term) == end-start && term == text[start:end] {
			term = "" // the bytes are the input's: let FTS5 read them there
		}
		return token(0, term, start, end)
	})
}
