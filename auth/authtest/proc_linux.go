package authtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the provider if the test binary dies
// without running its cleanup.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
