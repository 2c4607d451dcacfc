//go:build !linux

package main

import "os/exec"

// dieWithParent is Linux's parent-death signal; elsewhere an interrupted
// run may leave its child processes behind.
func dieWithParent(*exec.Cmd) {}
