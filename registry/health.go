package registry

import "time"

// Health states of SPEC section 6.
const (
	HealthUnknown      = "unknown"
	HealthHealthy      = "healthy"
	HealthAuthRequired = "healthy-auth-required"
	HealthUnhealthy    = "unhealthy"
	HealthDisabled     = "disabled"
)

// Health is what the gateway last learned about an upstream's health.
type Health struct {
	Status              string        `json:"status"`
	Reason              string        `json:"reason,omitempty"`
	LastChecked         time.Time     `json:"-"`
	Latency             time.Duration `json:"-"`
	ConsecutiveFailures int           `json:"consecutive_failures"`
}

// Display is the status as users read it: "unhealthy: <reason>" for
// failures, the bare status otherwise.
func (h Health) Display() string {
	if h.Status == HealthUnhealthy && h.Reason != "" {
		return h.Status + ": " + h.Reason
	}
	if h.Status == "" {
		return HealthUnknown
	}
	return h.Status
}

// LastCheckedISO is the last check time in RFC 3339, or "" when never checked.
func (h Health) LastCheckedISO() string {
	if h.LastChecked.IsZero() {
		return ""
	}
	return h.LastChecked.UTC().Format(time.RFC3339)
}
