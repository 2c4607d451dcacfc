package gateway

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/search"
)

// apiError is the JSON body of every REST error (SPEC section 3).
type apiError struct {
	Error     string `json:"error"`
	Details   any    `json:"details,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, r *http.Request, status int, msg string, details any) {
	writeJSON(w, status, apiError{Error: msg, Details: details, RequestID: requestID(r.Context())})
}

// statusOf translates a registry or auth error to an HTTP status: the one
// place where sentinel errors meet HTTP.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, registry.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, registry.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, registry.ErrExists):
		return http.StatusConflict
	case errors.Is(err, auth.ErrNoToken), errors.Is(err, auth.ErrInvalidToken):
		return http.StatusUnauthorized
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	case errors.Is(err, search.ErrBuilding):
		return http.StatusServiceUnavailable
	case errors.Is(err, errUpstream):
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}

var errForbidden = errors.New("forbidden")

// errorBody builds the message and details for err.
func errorBody(err error) (string, any) {
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		return ve.Error(), ve.Problems
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return "request body is larger than the limit of " + humanBytes(mbe.Limit), nil
	}
	switch statusOf(err) {
	case http.StatusInternalServerError:
		return "internal error; see the gateway log for this request id", nil
	default:
		return err.Error(), nil
	}
}

func writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status == http.StatusInternalServerError {
		logFrom(r.Context()).Error().Err(err).Msg("request failed")
	}
	msg, details := errorBody(err)
	writeError(w, r, status, msg, details)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	default:
		return itoa(n) + " bytes"
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
