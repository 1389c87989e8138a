//go:build !linux

package transport

import "syscall"

// setDeathSignal does nothing where the kernel has no parent-death signal: the reaper covers it.
func setDeathSignal(*syscall.SysProcAttr) {}
