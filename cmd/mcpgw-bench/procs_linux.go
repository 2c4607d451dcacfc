package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd when the harness dies, so that an
// interrupted run leaves no gateway or reference relay behind to skew the
// next one.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
