//go:build !linux

package authtest

import "os/exec"

// dieWithParent is a no-op where the kernel offers no parent-death signal;
// the test cleanup still stops the provider.
func dieWithParent(*exec.Cmd) {}
