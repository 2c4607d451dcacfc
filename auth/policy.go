package auth

// Action names used with Allowed besides MCP method names.
const (
	// ActionAdmin is registering, removing, toggling and refreshing servers
	// and editing the policy.
	ActionAdmin = "admin"
	// ActionRead is seeing a server in lists, details and search results.
	ActionRead = "read"
)

// Policy is the access decision. Until a policy or an identity provider is
// configured (local mode), every caller may read and use every server and
// only admins may administer; that is the foundation's behaviour, and the
// group policy of SPEC section 5 replaces it where configured.
type Policy struct{}

// NewPolicy returns the local-mode policy.
func NewPolicy() *Policy { return &Policy{} }

// Allowed is the one decision every surface asks: may p perform method (an
// MCP method, ActionRead or ActionAdmin) on server (its path), and for
// tools/call, on tool?
func (pol *Policy) Allowed(p *Principal, server, method, tool string) bool {
	if p == nil {
		return false
	}
	if method == ActionAdmin {
		return p.Admin
	}
	return true
}
