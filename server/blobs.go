package server

import (
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/veil-e2ee/veil/server/store"
)

// Blobs (docs/API.md, "Blobs"): opaque encrypted archives an account's
// devices hand each other, such as the history a device sends to a newly
// linked one. Raw bytes (application/octet-stream), not JSON; named by a
// random id the devices share; deleted on download or after a day.

const (
	// MaxBlobBytes bounds one blob.
	MaxBlobBytes = 64 << 20
)

var (
	errNoBlob             = newError(http.StatusNotFound, "blob_not_found", "There is no such blob for this account (it was downloaded already, or expired).")
	errBlobExists         = newError(http.StatusConflict, "blob_exists", "A blob with this id exists; use a new random id.")
	errBlobsUnsupported   = newError(http.StatusNotImplemented, "not_supported", "This server's store does not keep blobs.")
	errNotOctetStream     = newError(http.StatusUnsupportedMediaType, "unsupported_media_type", "A blob is sent as Content-Type: application/octet-stream.")
	errInvalidBlobID      = badRequest("invalid_blob_id", "The blob id in the path must be 16 bytes in unpadded base64url (22 characters).")
	errEmptyBlob          = badRequest("invalid_field", "A blob must not be empty.")
	errBlobTooLargeForAPI = errBodyTooLarge(MaxBlobBytes)
)

func (s *Server) blobStore() (store.Blobs, error) {
	if b, ok := s.cfg.Store.(store.Blobs); ok {
		return b, nil
	}
	return nil, errBlobsUnsupported
}

func (s *Server) handlePutBlob(w http.ResponseWriter, r *http.Request, p principal) error {
	bs, err := s.blobStore()
	if err != nil {
		return err
	}
	h, ae := relayHash(r)
	if ae != nil {
		return errInvalidBlobID
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/octet-stream" {
		return errNotOctetStream
	}
	if err := s.limit(r.Context(), "link", s.lim.Link, p.account[:]); err != nil {
		return err
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBlobBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errBlobTooLargeForAPI
		}
		return badRequest("body_unreadable", "The request body could not be read.")
	}
	if len(data) == 0 {
		return errEmptyBlob
	}
	if err := bs.PutBlob(r.Context(), h, p.account, data, s.now().Add(s.lim.BlobTTL)); errors.Is(err, store.ErrExists) {
		return errBlobExists
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleTakeBlob(w http.ResponseWriter, r *http.Request, p principal) error {
	bs, err := s.blobStore()
	if err != nil {
		return err
	}
	h, ae := relayHash(r)
	if ae != nil {
		return errInvalidBlobID
	}
	data, err := bs.TakeBlob(r.Context(), h, p.account, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return errNoBlob
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
	return nil
}

// sweepBlobs deletes expired blobs.
func (s *Server) sweepBlobs() {
	bs, err := s.blobStore()
	if err != nil {
		return
	}
	if err := bs.SweepBlobs(s.baseCtx, s.now()); err != nil && s.baseCtx.Err() == nil {
		s.log.Warn("server: blob sweep failed", redactErr(err))
	}
}
