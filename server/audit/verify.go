package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"

	"github.com/veil-e2ee/veil/server/store"
)

// Source is what Verify and Export read: a store's audit log, or an
// export read back with [ReadExport].
type Source interface {
	AuditHead(ctx context.Context) (uint64, []byte, error)
	ListAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error)
	AuditCheckpoints(ctx context.Context, after uint64, limit int) ([]store.AuditCheckpoint, error)
}

// Problem kinds reported by Verify.
const (
	ProblemAltered       = "altered"        // an entry's hash does not match its content
	ProblemChainBroken   = "chain_broken"   // an entry does not follow the previous one (inserted, removed or reordered)
	ProblemMissing       = "missing"        // a gap in the sequence numbers
	ProblemOutOfOrder    = "out_of_order"   // sequence numbers not increasing
	ProblemCheckpointSig = "checkpoint_sig" // a checkpoint's signature does not verify
	ProblemCheckpoint    = "checkpoint"     // the chain's hash at a checkpoint differs from the signed one
	ProblemTruncated     = "truncated"      // a signed checkpoint is past the end of the log
	ProblemHead          = "head"           // the store's recorded head differs from the last entry
)

// maxProblems bounds a report.
const maxProblems = 100

// Problem is one verification failure.
type Problem struct {
	Seq    uint64 `json:"seq"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Report is the outcome of Verify.
type Report struct {
	OK bool `json:"ok"`
	// Entries is how many entries were read; HeadSeq and HeadHash the
	// last one.
	Entries  uint64 `json:"entries"`
	HeadSeq  uint64 `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	// Checkpoints is how many signed checkpoints were checked;
	// LastCheckpoint the seq of the newest.
	Checkpoints    int    `json:"checkpoints"`
	LastCheckpoint uint64 `json:"last_checkpoint"`
	// Unprotected counts the entries after the last checkpoint: they
	// chain correctly, but someone able to write to the database could
	// have rewritten or removed them undetectably.
	Unprotected uint64 `json:"unprotected_entries"`
	// PrunedThrough is the signed checkpoint the log starts after when
	// retention has pruned older entries (0: the log is whole).
	PrunedThrough uint64 `json:"pruned_through,omitempty"`
	// PublicKey is the checkpoint key verified against (hex).
	PublicKey string    `json:"public_key"`
	Problems  []Problem `json:"problems,omitempty"`
}

func (r *Report) add(seq uint64, kind, format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, Problem{Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
}

// Err is nil when the log verified, else ErrTampered with the first
// problem.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	p := r.Problems[0]
	return fmt.Errorf("%w: %d problem(s), first at seq %d: %s: %s", ErrTampered, len(r.Problems), p.Seq, p.Kind, p.Detail)
}

// Verify walks the whole chain from the first entry: every entry must
// follow the previous one with the next sequence number, its hash must
// match its content, every checkpoint must carry a valid signature by
// pub and match the chain's hash at its seq, no checkpoint may lie past
// the last entry, and the store's head must be the last entry. It
// returns an error only when the source cannot be read; a log that fails
// verification gives a report with problems (see [Report.Err]).
func Verify(ctx context.Context, src Source, pub ed25519.PublicKey) (*Report, error) {
	rep := &Report{PublicKey: hex.EncodeToString(pub)}
	cps := map[uint64]store.AuditCheckpoint{}
	var after uint64
	for {
		page, err := src.AuditCheckpoints(ctx, after, store.MaxAuditPage)
		if err != nil {
			return nil, fmt.Errorf("audit: read checkpoints: %w", err)
		}
		for _, c := range page {
			if c.Seq <= after {
				return nil, fmt.Errorf("audit: checkpoints out of order at seq %d", c.Seq)
			}
			after = c.Seq
			cps[c.Seq] = c
			rep.Checkpoints++
			rep.LastCheckpoint = c.Seq
			if !VerifyCheckpoint(pub, c) {
				rep.add(c.Seq, ProblemCheckpointSig, "the checkpoint's signature does not verify with the audit key")
			}
		}
		if len(page) < store.MaxAuditPage {
			break
		}
	}
	prev := Genesis
	var last uint64
	// Retention prunes only up to a signed checkpoint, which stays: a log
	// that starts later continues from that checkpoint's hash.
	first, err := src.ListAudit(ctx, store.AuditQuery{Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("audit: read entries: %w", err)
	}
	anchor := uint64(0)
	switch {
	case len(first) == 1 && first[0].Seq > 1:
		anchor = first[0].Seq - 1
	case len(first) == 0:
		anchor = rep.LastCheckpoint
	}
	if c, ok := cps[anchor]; ok && anchor > 0 && VerifyCheckpoint(pub, c) {
		prev, last = c.Hash, c.Seq
		rep.PrunedThrough = c.Seq
	}
	// Read the entries, then the head; on a live database the head may
	// have moved on meanwhile (appends commit entry and head together),
	// so read on until the entries reach it.
	// A head still ahead after a read that found nothing new is a
	// problem (entries cut, head kept).
	reread := false
	for {
		n, err := verifyEntries(ctx, src, rep, cps, &prev, &last)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			reread = false
		}
		hseq, hhash, err := src.AuditHead(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit: read head: %w", err)
		}
		if hseq > last && !reread {
			reread = true
			continue
		}
		if hseq != last || (last > 0 && !bytes.Equal(hhash, prev)) {
			rep.add(hseq, ProblemHead, "the recorded head is entry %d but the log ends at %d", hseq, last)
		}
		break
	}
	rep.HeadSeq = last
	rep.HeadHash = hex.EncodeToString(prev)
	if rep.LastCheckpoint > last {
		rep.add(rep.LastCheckpoint, ProblemTruncated, "a signed checkpoint covers entries up to %d but the log ends at %d", rep.LastCheckpoint, last)
	} else {
		rep.Unprotected = last - rep.LastCheckpoint
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// verifyEntries checks the entries after *last, advancing *prev and
// *last; it returns how many it read.
func verifyEntries(ctx context.Context, src Source, rep *Report, cps map[uint64]store.AuditCheckpoint, prev *[]byte, last *uint64) (int, error) {
	total := 0
	for {
		page, err := src.ListAudit(ctx, store.AuditQuery{After: *last, Limit: store.MaxAuditPage})
		if err != nil {
			return total, fmt.Errorf("audit: read entries: %w", err)
		}
		for i := range page {
			e := &page[i]
			switch {
			case e.Seq <= *last:
				rep.add(e.Seq, ProblemOutOfOrder, "entry %d follows entry %d", e.Seq, *last)
			case e.Seq != *last+1:
				rep.add(e.Seq, ProblemMissing, "entries %d to %d are missing", *last+1, e.Seq-1)
			}
			if !bytes.Equal(e.PrevHash, *prev) {
				rep.add(e.Seq, ProblemChainBroken, "the entry does not chain to the one before it")
			}
			h := Hash(e.PrevHash, e)
			if !bytes.Equal(h, e.Hash) {
				rep.add(e.Seq, ProblemAltered, "the entry's content does not match its hash")
			}
			if c, ok := cps[e.Seq]; ok && !bytes.Equal(c.Hash, h) {
				rep.add(e.Seq, ProblemCheckpoint, "the chain differs from the signed checkpoint")
			}
			// Continue from what this entry really hashes to, so one
			// problem is not reported again for every later entry.
			*prev = h
			if e.Seq > *last {
				*last = e.Seq
			}
			rep.Entries++
		}
		total += len(page)
		if len(page) < store.MaxAuditPage {
			return total, nil
		}
	}
}
