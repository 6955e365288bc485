package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	msgrauth "github.com/msgrhq/msgr/auth"
	"github.com/msgrhq/msgr/storage"
)

// maxJSONBody bounds the request bodies of the user and admin APIs.
const maxJSONBody = 64 << 10

// apiError is the body of every error answer of the user and admin APIs.
type apiError struct {
	Error string `json:"error"` // human-readable, safe to show
	Code  string `json:"code"`  // stable, for programs
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: msg, Code: code})
}

// readJSON decodes a request body into v, refusing unknown fields, trailing
// data and bodies over maxJSONBody. On error it has answered already.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", maxJSONBody))
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

// writeAuthError answers a failed authentication with the status and code
// its reason calls for. The message never says whether a user exists.
func writeAuthError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errNoCredentials):
		w.Header().Set("WWW-Authenticate", `Basic realm="msgr", charset="UTF-8"`)
		writeError(w, http.StatusUnauthorized, "unauthenticated", err.Error())
	case errors.Is(err, msgrauth.ErrBanned):
		writeError(w, http.StatusForbidden, "banned", "banned")
	case errors.Is(err, msgrauth.ErrDisabled):
		writeError(w, http.StatusForbidden, "disabled", "account disabled")
	case errors.Is(err, storage.ErrRevoked):
		writeError(w, http.StatusForbidden, "revoked", "device revoked: log in with another device id")
	case errors.Is(err, msgrauth.ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, "unavailable", "authentication is temporarily unavailable")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="msgr"`)
		writeError(w, http.StatusUnauthorized, "bad_credentials", "bad user, password or token")
	}
}
