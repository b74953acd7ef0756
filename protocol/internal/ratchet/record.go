package ratchet

import (
	"crypto/subtle"
	"errors"
	"io"

	"github.com/veil-e2ee/veil/protocol/internal/wire"
)

// Record is a session record: the current state and archived previous
// states (newest first), as libsignal keeps them so that messages sent
// under a superseded session still decrypt.
type Record struct {
	Current  *State
	Previous []*State
}

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	c := &Record{}
	if r.Current != nil {
		c.Current = r.Current.Clone()
	}
	if len(r.Previous) > 0 {
		c.Previous = make([]*State, len(r.Previous))
		for i, p := range r.Previous {
			c.Previous[i] = p.Clone()
		}
	}
	return c
}

// PromoteState makes s the current state, archiving the old current one.
func (r *Record) PromoteState(s *State) {
	r.Archive()
	r.Current = s
}

// Archive moves the current state (if any) to the front of the archive,
// dropping the oldest beyond MaxArchivedStates.
func (r *Record) Archive() {
	if r.Current == nil {
		return
	}
	r.Previous = append(r.Previous, nil)
	copy(r.Previous[1:], r.Previous)
	r.Previous[0] = r.Current
	r.Current = nil
	if len(r.Previous) > MaxArchivedStates {
		r.Previous = r.Previous[:MaxArchivedStates]
	}
}

// PromoteMatching looks for a state created by the PQXDH run with this
// base key; if an archived one matches it becomes current. It reports
// whether one was found.
func (r *Record) PromoteMatching(version uint32, baseKey []byte) bool {
	if r.Current != nil && r.Current.Version == version &&
		subtle.ConstantTimeCompare(r.Current.AliceBaseKey[:], baseKey) == 1 {
		return true
	}
	for i, p := range r.Previous {
		if p.Version == version && subtle.ConstantTimeCompare(p.AliceBaseKey[:], baseKey) == 1 {
			r.Previous = append(r.Previous[:i], r.Previous[i+1:]...)
			r.PromoteState(p)
			return true
		}
	}
	return false
}

// Decrypt decrypts a serialized SignalMessage with the current state, then
// with each archived state; a state that decrypts an archived message
// becomes current. prekey says the message came inside a PreKey message,
// in which case only the current state (just set up or matched) is tried,
// as libsignal does. On failure the record is unchanged.
func (r *Record) Decrypt(msg []byte, prekey bool, rand io.Reader) ([]byte, error) {
	m, auth, err := wire.ParseSignalMessage(msg)
	if err != nil {
		return nil, err
	}
	if r.Current == nil && len(r.Previous) == 0 {
		return nil, ErrNoSession
	}
	if r.Current != nil {
		pt, err := r.Current.Decrypt(&m, auth, rand)
		if err == nil || errors.Is(err, ErrDuplicate) {
			return pt, err
		}
		if prekey {
			return nil, ErrDecrypt
		}
		if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrTooFarAhead) {
			return nil, err // e.g. randomness failure
		}
	}
	for i, p := range r.Previous {
		pt, err := p.Decrypt(&m, auth, rand)
		if errors.Is(err, ErrDuplicate) {
			return nil, err
		}
		if err == nil {
			r.Previous = append(r.Previous[:i], r.Previous[i+1:]...)
			r.PromoteState(p)
			return pt, nil
		}
	}
	return nil, ErrDecrypt
}
