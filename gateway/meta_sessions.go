package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/auth"
)

// metaSessionIdleTTL is how long the meta server keeps the state of a
// session that sends nothing: a client that never sends DELETE (most
// close without it) must not leave it behind for good. A client that comes
// back later with the same id carries on; only server-to-client
// notifications of the idle time are lost.
const metaSessionIdleTTL = 10 * time.Minute

// metaSessionIDs issues the meta server's session ids sealed to the caller,
// as the relay's are: an id is valid only for the caller it was issued to,
// and no table of ids is kept (mcp-go's default manager keeps every id it
// issued, and every one it terminated, for good).
type metaSessionIDs struct{ sealer *Sealer }

var _ server.SessionIdManagerResolver = metaSessionIDs{}

// ResolveSessionIdManager returns the manager of r's caller. The session
// sweeper asks with a nil request, to terminate: that needs no caller.
func (m metaSessionIDs) ResolveSessionIdManager(r *http.Request) server.SessionIdManager {
	// A NUL first: no server's key (the relay's labels) starts with one.
	label := "\x00meta-session"
	if r != nil {
		if p := auth.FromContext(r.Context()); p != nil {
			label += "\x00" + p.Subject
		}
	}
	return callerSessionIDs{sealer: m.sealer, label: label}
}

// callerSessionIDs is one caller's session id manager.
type callerSessionIDs struct {
	sealer *Sealer
	label  string
}

var _ server.SessionIdManager = callerSessionIDs{}

func (c callerSessionIDs) Generate() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return c.sealer.Seal(c.label, base64.RawURLEncoding.EncodeToString(b[:]))
}

// Validate accepts the ids sealed for this caller; any other id is
// unknown (404).
func (c callerSessionIDs) Validate(id string) (bool, error) {
	if _, err := c.sealer.Unseal(c.label, id); err != nil {
		return false, err
	}
	return false, nil
}

// Terminate keeps nothing: the session's state goes (mcp-go drops it), and
// an id presented again starts afresh.
func (c callerSessionIDs) Terminate(string) (bool, error) { return false, nil }
