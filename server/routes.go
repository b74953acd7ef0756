package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// principal is the authenticated device making a request.
type principal struct {
	account store.AccountID
	device  uint32
	// compliance: the device is a legal hold's compliance device, which
	// may call only the routes open to receivers.
	compliance bool
}

// access is who may call a route.
type access uint8

const (
	// anyone: no device credential (some routes check another secret).
	anyone access = iota
	// accountDevice: an authenticated device acting for its account. A
	// legal hold's compliance device is refused with 403
	// compliance_device: it has a credential of the account but must
	// never act as it.
	accountDevice
	// receiver: any authenticated device, compliance devices included —
	// what receiving needs and nothing more: the queue, its own prekeys,
	// the holds, the account's device list, and username lookups (a
	// receiver confirms the username a new sender claims).
	receiver
)

type handlerFunc func(w http.ResponseWriter, r *http.Request, p principal) error

// route is one API endpoint. The table below is the single source of the
// mux, the metrics route names and the OpenAPI sync test.
type route struct {
	method, path string
	// name labels metrics and logs.
	name string
	// auth says who may call it; every route with auth accountDevice also
	// answers 403 (added to codes by routeTable).
	auth access
	// codes are the statuses the endpoint can answer (kept equal to the
	// OpenAPI document by a test).
	codes []int
	h     handlerFunc
}

// common statuses every JSON endpoint may answer.
var (
	authCodes = []int{401, 405, 500, 503}
	bodyCodes = []int{400, 413, 415}
)

func codes(lists ...[]int) []int {
	var out []int
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func (s *Server) routeTable() []*route {
	rs := []*route{
		{"POST", "/v1/accounts", "register", anyone, codes([]int{201, 409, 429, 405, 500, 503}, bodyCodes), s.handleRegister},
		{"GET", "/v1/usernames/{username}", "lookup", receiver, codes([]int{200, 400, 404, 429}, authCodes), s.handleLookup},
		{"GET", "/v1/devices", "list_devices", receiver, codes([]int{200}, authCodes), s.handleListDevices},
		{"POST", "/v1/devices", "link_device", accountDevice, codes([]int{201, 409, 429}, authCodes, bodyCodes), s.handleLinkDevice},
		{"POST", "/v1/link-tokens", "link_token", accountDevice, codes([]int{201, 429, 501}, authCodes), s.handleLinkToken},
		{"POST", "/v1/linked-devices", "link_with_token", anyone, codes([]int{201, 403, 409, 429, 501, 405, 500, 503}, bodyCodes), s.handleLinkWithToken},
		{"PUT", "/v1/provisioning/{id}", "put_provisioning", accountDevice, codes([]int{204, 400, 409, 429, 501}, authCodes, bodyCodes), s.handlePutProvisioning},
		{"GET", "/v1/provisioning/{id}", "take_provisioning", anyone, []int{200, 400, 404, 429, 501, 405, 500, 503}, s.handleTakeProvisioning},
		{"PUT", "/v1/blobs/{id}", "put_blob", accountDevice, codes([]int{204, 400, 409, 413, 415, 429, 501}, authCodes), s.handlePutBlob},
		{"GET", "/v1/blobs/{id}", "take_blob", accountDevice, codes([]int{200, 400, 404, 501}, authCodes), s.handleTakeBlob},
		{"PUT", "/v1/devices/{device}/name", "set_device_name", accountDevice, codes([]int{204, 400, 404, 501}, authCodes, bodyCodes), s.handleSetDeviceName},
		{"DELETE", "/v1/devices/{device}", "remove_device", accountDevice, codes([]int{204, 400, 403, 404}, authCodes), s.handleRemoveDevice},
		{"PUT", "/v1/prekeys", "upload_prekeys", receiver, codes([]int{200}, authCodes, bodyCodes), s.handleUploadPreKeys},
		{"GET", "/v1/prekeys", "prekey_counts", receiver, codes([]int{200}, authCodes), s.handlePreKeyCounts},
		{"GET", "/v1/bundles/{account}", "bundles", accountDevice, codes([]int{200, 400, 404, 429}, authCodes), s.handleBundles},
		{"GET", "/v1/bundles/{account}/{device}", "bundle", accountDevice, codes([]int{200, 400, 404, 429}, authCodes), s.handleBundles},
		{"PUT", "/v1/messages/{account}", "send", accountDevice, codes([]int{200, 404, 409, 410, 429}, authCodes, bodyCodes), s.handleSend},
		{"GET", "/v1/certificate/trust-root", "trust_root", anyone, []int{200, 405}, s.handleTrustRoot},
		{"GET", "/v1/certificate/sender", "sender_certificate", accountDevice, codes([]int{200, 409}, authCodes), s.handleSenderCert},
		{"PUT", "/v1/accounts/me/access", "set_access", accountDevice, codes([]int{204}, authCodes, bodyCodes), s.handleSetAccess},
		{"GET", "/v1/accounts/me/export", "export_account", accountDevice, codes([]int{200}, authCodes), s.handleExport},
		{"DELETE", "/v1/accounts/me", "delete_account", accountDevice, codes([]int{200, 409}, authCodes), s.handleDeleteAccount},
		{"GET", "/v1/receipts/key", "receipt_key", anyone, []int{200, 405}, s.handleReceiptKey},
		{"POST", "/v1/reports/decrypt-failures", "decrypt_failures", accountDevice, codes([]int{204, 429}, authCodes, bodyCodes), s.handleDecryptFailures},
		{"PUT", "/v1/accounts/me/recovery", "set_recovery", accountDevice, codes([]int{204}, authCodes, bodyCodes), s.handleSetRecovery},
		{"PUT", "/v1/accounts/me/backup", "put_backup", accountDevice, codes([]int{204, 400, 413, 415, 429}, authCodes), s.handlePutBackup},
		{"POST", "/v1/recovery/backup", "fetch_backup", anyone, codes([]int{200, 401, 404, 429, 405, 500, 503}, bodyCodes), s.handleFetchBackup},
		{"POST", "/v1/accounts/{account}/recover", "recover_account", anyone, codes([]int{201, 400, 401, 429, 405, 500, 503}, bodyCodes), s.handleRecover},
		{"PUT", "/v1/sealed/{account}", "sealed_send", anyone, codes([]int{200, 401, 404, 409, 410, 429, 405, 500, 503}, bodyCodes), s.handleSealedSend},
		{"PUT", "/v1/sealed", "sealed_multi", anyone, codes([]int{200, 401, 404, 409, 429, 405, 500, 503}, bodyCodes), s.handleSealedMulti},
		{"GET", "/v1/holds", "legal_holds", receiver, codes([]int{200}, authCodes), s.handleHolds},
		{"POST", "/v1/holds/{hold}/device", "activate_hold", anyone, codes([]int{201, 403, 404, 409, 429, 405, 500, 503}, bodyCodes), s.handleActivateHold},
		{"GET", "/v1/accounts/me/audit", "account_audit", accountDevice, codes([]int{200, 400}, authCodes), s.handleAccountAudit},
		{"GET", "/v1/queue", "fetch", receiver, codes([]int{200, 400}, authCodes), s.handleFetch},
		{"POST", "/v1/queue/ack", "ack", receiver, codes([]int{204}, authCodes, bodyCodes), s.handleAck},
		{"GET", "/v1/queue/websocket", "websocket", receiver, codes([]int{101, 400}, authCodes), s.handleWebSocket},
		{"GET", "/v1/openapi.json", "openapi", anyone, []int{200, 405}, s.handleOpenAPI},
		{"GET", "/healthz", "healthz", anyone, []int{200, 405}, s.handleHealthz},
		{"GET", "/readyz", "readyz", anyone, []int{200, 405, 503}, s.handleReadyz},
		{"GET", "/metrics", "metrics", anyone, []int{200, 405}, nil},
	}
	for _, rt := range rs {
		if rt.auth == accountDevice && !slices.Contains(rt.codes, http.StatusForbidden) {
			rt.codes = append(rt.codes, http.StatusForbidden)
		}
	}
	return rs
}

func (s *Server) buildMux() http.Handler {
	mux := http.NewServeMux()
	s.routes = s.routeTable()
	methods := map[string][]string{}
	var order []string
	for _, rt := range s.routes {
		if _, ok := methods[rt.path]; !ok {
			order = append(order, rt.path)
		}
		methods[rt.path] = append(methods[rt.path], rt.method)
		var h http.Handler
		if rt.h == nil {
			h = s.metricsHandler()
		} else {
			h = s.wrap(rt)
		}
		mux.Handle(rt.method+" "+rt.path, s.instrument(rt.name, h))
	}
	// Other methods on a known path: a JSON 405 with Allow.
	for _, p := range order {
		allow := strings.Join(methods[p], ", ")
		if strings.Contains(allow, "GET") {
			allow += ", HEAD"
		}
		name := s.routeName(p)
		mux.Handle(p, s.instrument(name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, errMethod(allow))
		})))
	}
	mux.Handle("/", s.instrument("unknown", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNotFound)
	})))
	return mux
}

func (s *Server) routeName(path string) string {
	for _, rt := range s.routes {
		if rt.path == path {
			return rt.name
		}
	}
	return "unknown"
}

// wrap adds authentication and error translation to a handler.
func (s *Server) wrap(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p principal
		if rt.auth != anyone {
			var ae *apiError
			p, ae = s.authenticate(r)
			if ae != nil {
				writeError(w, ae)
				return
			}
			if p.compliance && rt.auth != receiver {
				writeError(w, errComplianceReceiver)
				return
			}
		}
		if err := rt.h(w, r, p); err != nil {
			s.writeErr(w, r, rt.name, err)
		}
	})
}

// writeErr answers err: an *apiError as is, store domain errors mapped,
// anything else a logged 500 (or 503 when the store is closed or the
// server is stopping).
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, name string, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrClosed), errors.Is(err, context.Canceled) && s.baseCtx.Err() != nil:
		ae = errUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if r.Context().Err() != nil {
			// The client went away; nobody reads the answer.
			ae = errUnavailable
			break
		}
		fallthrough
	default:
		s.log.Error("server: request failed", "route", name, redactErr(err))
		ae = errInternal
	}
	writeError(w, ae)
}

// dummyHash is compared against when the device does not exist, so a
// missing device and a wrong credential take the same time.
var dummyHash = sha256.Sum256([]byte("veil: no such device"))

// CredentialHash is how the server stores a device credential: SHA-256.
// A credential is 32 random bytes, so a fast hash is enough (there is
// nothing to brute-force).
func CredentialHash(credential []byte) []byte {
	h := sha256.Sum256(credential)
	return h[:]
}

// parseBasic reads "Authorization: Basic" with user "<account>.<device>"
// and the base64 credential as password.
func parseBasic(r *http.Request) (store.AccountID, uint32, []byte, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return store.AccountID{}, 0, nil, false
	}
	dot := strings.LastIndexByte(user, '.')
	if dot < 0 {
		return store.AccountID{}, 0, nil, false
	}
	acc, ok1 := parseAccountID(user[:dot])
	dev, ok2 := parseDeviceID(user[dot+1:])
	cred, err := base64.StdEncoding.Strict().DecodeString(pass)
	if !ok1 || !ok2 || err != nil || len(cred) != credentialLen {
		return store.AccountID{}, 0, nil, false
	}
	return acc, dev, cred, true
}

const credentialLen = 32

func (s *Server) authenticate(r *http.Request) (principal, *apiError) {
	acc, dev, cred, ok := parseBasic(r)
	if !ok {
		return principal{}, errUnauthorized
	}
	sum := sha256.Sum256(cred)
	key := authKey{account: acc, device: dev}
	mono := time.Now()
	if e, ok := s.auth.get(key, &sum, mono); ok {
		s.touch(r, key, e.lastSeen)
		return principal{account: acc, device: dev, compliance: e.compliance}, nil
	}
	d, err := s.st.Device(r.Context(), acc, dev)
	want := dummyHash[:]
	if err == nil {
		want = d.CredentialHash
	} else if !errors.Is(err, store.ErrNotFound) {
		if errors.Is(err, store.ErrClosed) || s.baseCtx.Err() != nil {
			return principal{}, errUnavailable
		}
		s.log.Error("server: authentication lookup failed", redactErr(err))
		return principal{}, errInternal
	}
	if subtle.ConstantTimeCompare(sum[:], want) != 1 || err != nil {
		return principal{}, errUnauthorized
	}
	s.auth.put(key, d, mono)
	s.touch(r, key, d.LastSeen)
	return principal{account: acc, device: dev, compliance: d.Compliance}, nil
}

// touch records that an authenticated device was seen, when the day has
// changed since lastSeen (LastSeen is day-granular).
func (s *Server) touch(r *http.Request, k authKey, lastSeen time.Time) {
	now := s.now()
	if !now.UTC().Truncate(24 * time.Hour).After(lastSeen) {
		return
	}
	if err := s.st.TouchDevice(r.Context(), k.account, k.device, now); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("server: touch device failed", redactErr(err))
	}
	s.auth.forget(k) // the cached LastSeen is stale now
}

// clientAddr is the client's IP for the registration limit (hashed at
// once; never stored or logged).
func (s *Server) clientAddr(r *http.Request) string {
	if s.cfg.ClientIPHeader != "" {
		if v := r.Header.Get(s.cfg.ClientIPHeader); v != "" {
			first, _, _ := strings.Cut(v, ",")
			return strings.TrimSpace(first)
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limit spends a token from the named bucket; a 429 when none is left.
func (s *Server) limit(ctx context.Context, name string, rate Rate, parts ...[]byte) error {
	if rate.Burst <= 0 {
		return nil
	}
	ok, retry, err := s.st.TakeToken(ctx, s.keys.rateKey(name, parts...), rate.Burst, rate.Interval, s.now())
	if err != nil {
		return err
	}
	if !ok {
		s.m.rateLimited.WithLabelValues(name).Inc()
		s.auditRateLimited(name, parts)
		return errRateLimited(retry)
	}
	return nil
}
